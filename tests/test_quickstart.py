"""README's quickstart, as written, under the gunicorn command of docs/deployment.rst,
against the mock OpenAI upstream. Both are read from the documents, so they cannot drift."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock
from tests.helpers import ROOT, Server, free_port, wait_for_port

pytestmark = pytest.mark.server

KEY = "sk-quickstart-test"


def quickstart_code() -> str:
    """The first Python block after README's "## Quickstart" heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def protection_code() -> str:
    """The second Python block of the quickstart: the lines that protect /ai."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    return re.findall(r"```python\n(.*?)```", section, re.S)[1]


def deployment_command() -> list[str]:
    """The gunicorn command of docs/deployment.rst."""
    doc = (ROOT / "docs" / "deployment.rst").read_text()
    match = re.search(r"^\s+(gunicorn -k gevent .*?)\n\n", doc, re.S | re.M)
    assert match is not None
    return shlex.split(match.group(1).replace("\\\n", " "))


@pytest.fixture
def mock() -> Iterator[OpenAIMock]:
    with OpenAIMock(api_key=KEY) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def quickstart(tmp_path: Path, mock: OpenAIMock) -> Iterator[Server]:
    (tmp_path / "app.py").write_text(quickstart_code())
    port = free_port()
    command = deployment_command()
    assert command[0] == "gunicorn" and command[-1] == "app:app"
    # Only where to listen, and a control socket of its own (the test runs beside others).
    extra = ["--bind", f"127.0.0.1:{port}", "--no-control-socket"]
    cmd = [sys.executable, "-m", *command[:-1], *extra, command[-1]]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OPENAI_API_KEY": KEY,
        "FLASK_AI_SSE_BASE_URL": mock.base_url,
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, port, log)
    try:
        wait_for_port(port, proc=proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"gunicorn did not start:\n{server.output()}") from None
    yield server
    server.stop(timeout=10)


def test_the_quickstart_streams_from_the_configured_base_url(
    quickstart: Server, mock: OpenAIMock
) -> None:
    import requests

    mock.script(MockReply(text="Hello from the quickstart!"))
    resp = requests.post(f"{quickstart.url}/chat", json={"prompt": "Hi!"}, timeout=(3, 10))
    assert resp.status_code == 200, quickstart.output()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    result = collect(resp.content)
    assert result.text == "Hello from the quickstart!"
    sent = mock.last_request.json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][-1] == {"role": "user", "content": "Hi!"}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{}", {"Content-Type": "application/json"}),
        (b"[1, 2]", {"Content-Type": "application/json"}),
        (b"not json", {"Content-Type": "application/json"}),
        (b"prompt=hi", {"Content-Type": "application/x-www-form-urlencoded"}),
    ],
)
def test_the_quickstart_answers_bad_bodies_with_a_json_400(
    quickstart: Server, body: bytes, headers: dict[str, str]
) -> None:
    import requests

    resp = requests.post(f"{quickstart.url}/chat", data=body, headers=headers, timeout=(3, 10))
    assert resp.status_code == 400, quickstart.output()
    assert resp.json()["error"]["type"] == "missing_prompt"
    assert "Traceback" not in quickstart.output()


def test_the_protection_lines_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of README's three lines, applied to the quickstart app, closes /ai to strangers."""
    from flask import Flask

    monkeypatch.setenv("FLASK_AI_SSE_PROVIDER", "fake")  # the documented way to override
    monkeypatch.setenv("FLASK_AI_SSE_FAKE_DELAY", "0")

    import flask_ai_sse

    lines = [line for line in protection_code().splitlines() if line.strip()]
    assert len(lines) == 3
    code = quickstart_code()
    for line in lines:
        if line.startswith("app.config"):  # config keys: before the extension reads them
            source = code.replace("ai = AISSE(app)", f"{line}\nai = AISSE(app)")
        else:
            source = f"from flask import abort, session\n{code}\n{line}\n"
        namespace: dict[str, object] = {"__name__": "quickstart_app"}
        exec(compile(source, "app.py", "exec"), namespace)
        app = namespace["app"]
        assert isinstance(app, Flask) and isinstance(namespace["ai"], flask_ai_sse.AISSE)
        client = app.test_client()
        statuses = [client.post("/ai/ask", json={"prompt": "hi"}).status_code for _ in range(22)]
        if "REGISTER_BLUEPRINT" in line:
            assert set(statuses) == {404}
        elif "RATE_LIMIT" in line:
            assert statuses == [200] * 20 + [429] * 2
        else:
            assert set(statuses) == {401}


def test_the_docs_quickstart_is_the_readmes() -> None:
    """docs/quickstart.rst shows the same code (the first block of "A first app")."""
    import textwrap

    doc = (ROOT / "docs" / "quickstart.rst").read_text()
    section = doc[doc.index("A first app") :]
    match = re.search(r"\.\. code-block:: python\n\n(.*?)\n\S", section, re.S)
    assert match is not None
    assert textwrap.dedent(match.group(1)).strip() == quickstart_code().strip()
