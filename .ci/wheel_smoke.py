"""Smoke test of an installed wheel: run with the Python of a fresh virtualenv, outside
the checkout (whose path is the one argument), so that only the installed package imports.

Checks: the package imports from site-packages with its version; every data file of the
checkout's package (``py.typed``, ``static/...``) was installed; the demo app, served
by that virtualenv's gunicorn with the demo's config, answers a stream (and serves
``/ai/client.js`` when the package has one).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def check_import(checkout: Path) -> Path:
    import flask_ai_sse

    installed = Path(flask_ai_sse.__file__).resolve().parent
    assert checkout not in installed.parents, f"imported from the checkout: {installed}"
    assert flask_ai_sse.__version__ == importlib.metadata.version("flask-ai-sse")
    print(f"ok: flask_ai_sse {flask_ai_sse.__version__} from {installed}")
    return installed


def check_package_data(checkout: Path, installed: Path) -> None:
    source = checkout / "flask_ai_sse"
    data = [
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    missing = [str(p) for p in data if not (installed / p).is_file()]
    assert not missing, f"package data missing from the wheel: {missing}"
    print(f"ok: package data installed: {', '.join(sorted(map(str, data)))}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_demo(checkout: Path) -> None:
    port = free_port()
    tmp = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        BIND=f"127.0.0.1:{port}",
        DATABASE_URL=f"sqlite:///{tmp / 'demo.db'}",
        XDG_RUNTIME_DIR=str(tmp),
        FLASK_AI_SSE_FAKE_DELAY="0",
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    config = checkout / "examples" / "chat" / "gunicorn.conf.py"
    log = (tmp / "demo.log").open("wb")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", str(config)], cwd=tmp, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "demo.log").read_text()) from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{url}/", timeout=10) as page:
            assert page.status == 200
        with urllib.request.urlopen(f"{url}/ai/stream?prompt=hello", timeout=20) as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            body = resp.read().decode()
        data = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]", body[-500:]
        text = "".join(json.loads(d).get("content", "") for d in data[1:-2])
        assert "hello" in text, body[-500:]
        print(f"ok: the demo app answered a stream of {len(data)} events")
        if (checkout / "flask_ai_sse" / "static" / "client.js").is_file():
            with urllib.request.urlopen(f"{url}/ai/client.js", timeout=10) as script:
                assert script.status == 200 and b"export" in script.read()
            print("ok: the demo app serves /ai/client.js from the installed package")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> None:
    checkout = Path(sys.argv[1]).resolve()
    installed = check_import(checkout)
    check_package_data(checkout, installed)
    check_demo(checkout)


if __name__ == "__main__":
    main()
