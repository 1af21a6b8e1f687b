"""The demo's gunicorn config: its own control socket, and streams that end cleanly
(``shutting_down`` + ``[DONE]``, the library's shutdown hooks) when the server stops
(Ctrl-C, SIGTERM) instead of being cut."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flask_ai_sse.testing import collect
from tests.helpers import ROOT, free_port, open_stream, wait_for_port

CONFIG = ROOT / "examples" / "chat" / "gunicorn.conf.py"

pytestmark = pytest.mark.server


def test_control_socket_is_per_bind_address(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = set()
    for bind in ("127.0.0.1:8001", "127.0.0.1:8002", "unix:/tmp/x.sock"):
        monkeypatch.setenv("BIND", bind)
        settings = runpy.run_path(str(CONFIG))
        paths.add(settings["control_socket"])
        assert not settings["control_socket"].endswith("/gunicorn.ctl")
    assert len(paths) == 3


class Demo:
    def __init__(self, tmp: Path, *, graceful: int = 120) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "BIND": f"127.0.0.1:{self.port}",
            "GRACEFUL_TIMEOUT": str(graceful),
            "DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}",
            "XDG_RUNTIME_DIR": str(tmp),
            "FLASK_AI_SSE_FAKE_DELAY": "0.05",
            "FLASK_AI_SSE_FAKE_RESPONSE": json.dumps("word " * 400),
        }
        self.log = tmp / "demo.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", str(CONFIG)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, proc=self.proc)
        self.control_socket = tmp / f"ai-sse-demo-127.0.0.1_{self.port}.ctl"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    server = Demo(tmp_path)
    yield server
    server.stop()


def _stream_then(demo: Demo, sig: int) -> list[str]:
    """Start a long stream, read its first token, signal the master, read to the end."""
    resp = open_stream(f"{demo.url}/ai/stream", params={"prompt": "hi"}, timeout=15)
    assert resp.status_code == 200
    chunks = resp.iter_content(chunk_size=None)
    first = next(chunks)
    while b'"content"' not in first:
        first += next(chunks)
    demo.proc.send_signal(sig)
    body = first + b"".join(chunks)  # ends when the server ends the response
    result = collect(body)
    assert result.events[-1].data == "[DONE]", body[-300:]
    if result.terminal is not None and result.terminal.event == "error":
        assert json.loads(result.terminal.data)["error"]["type"] == "shutting_down"
    assert demo.proc.wait(20) == 0, demo.log.read_text()
    return [e.event for e in result.events]


def test_ctrl_c_ends_streams_with_a_terminal_event(demo: Demo) -> None:
    deadline = time.monotonic() + 10  # the master opens it after the first workers start
    while not demo.control_socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert demo.control_socket.exists()
    events = _stream_then(demo, signal.SIGINT)
    assert events[-2] == "error"  # of type shutting_down: see _stream_then
    assert "1 generation(s) could not finish in time" in demo.log.read_text()


def test_sigterm_ends_long_streams_before_gunicorn_would_cut_them(tmp_path: Path) -> None:
    demo = Demo(tmp_path, graceful=7)  # streams end 2 s before the 7 s graceful timeout
    try:
        events = _stream_then(demo, signal.SIGTERM)
        assert events[-2] == "error"
        assert "Worker graceful timeout" not in demo.log.read_text()
    finally:
        demo.stop()
