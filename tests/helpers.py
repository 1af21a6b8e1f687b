"""What the tests share besides fixtures: servers, services, requests and the app factory.

Fixtures live in ``conftest.py`` files and call these; test modules import from here,
never from a ``conftest``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse.sse import ServerSentEvent, SSEDecoder

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def need_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a newcomer's ``pytest`` passes, CI never hides a gap."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI=true: service tests must run)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling for readiness, not an assertion
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class Server:
    """A gunicorn ``-k gevent`` process serving an app factory on a free loopback port."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class ServerPool:
    """Starts ``gunicorn -k gevent`` servers of an app factory and stops them all at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.servers: list[Server] = []

    def __call__(
        self,
        config: dict[str, Any] | None = None,
        *,
        app: str = "tests.apps.server_app:create_app()",
        workers: int = 1,
        port: int | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        """Config keys become ``APP_<key>`` env vars (JSON) read by ``tests/apps/server_app.py``."""
        port = port or free_port()
        environ = {**os.environ, **(env or {})}
        environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{environ.get('PYTHONPATH', '')}"
        for key, value in (config or {}).items():
            environ[f"APP_{key}"] = json.dumps(value)
        log = self.tmp / f"gunicorn-{port}.log"
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "gevent",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "5",
            "--timeout",
            "30",
            "--log-level",
            "warning",
            "--no-control-socket",  # gunicorn 27 shares one control socket path otherwise
            *(extra_args or []),
            app,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server(proc, port, log)
        self.servers.append(server)
        try:
            wait_for_port(port, proc=proc)
        except Exception:
            server.stop()
            raise RuntimeError(f"gunicorn did not start:\n{server.output()}") from None
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


def make_app(ai: AISSE | None = None, /, **config: Any) -> Flask:
    """A Flask app with ``ai`` (a fresh :class:`AISSE` when not given) registered.

    ``config`` is set before registration; the fake provider answers without
    delay (``AI_SSE_FAKE_DELAY=0``) unless ``config`` says otherwise.
    """
    app = Flask(__name__)
    app.config.update({"AI_SSE_FAKE_DELAY": 0.0, **config})
    (ai if ai is not None else AISSE()).init_app(app)
    return app


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy and return its value; fail after ``timeout`` seconds.

    The default is generous on purpose: it only stops a hang on a loaded machine, it
    measures nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # polling, not an assertion


def events(resp: requests.Response) -> Iterator[ServerSentEvent]:
    """The events of a live SSE response as they arrive (comments skipped)."""
    decoder = SSEDecoder()
    for chunk in resp.iter_content(chunk_size=None):
        for item in decoder.feed(chunk):
            if isinstance(item, ServerSentEvent):
                yield item


def require_redis() -> str:
    """The test Redis URL, its db flushed; for module-scoped servers too."""
    try:
        import redis
    except ImportError:
        need_service("Redis", "the 'redis' package is not installed (pip install -e '.[dev]')")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        need_service("Redis", f"{REDIS_URL}: {exc}")
    return REDIS_URL


def require_postgres() -> str:
    """The PostgreSQL URL, once the server answers (skips, or fails under CI)."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        need_service("PostgreSQL", f"{POSTGRES_URL}: {exc}")
    return POSTGRES_URL


def open_stream(
    url: str, *, method: str = "GET", timeout: float = 10.0, **kwargs: Any
) -> requests.Response:
    """An SSE request with a read timeout, so nothing hangs."""
    return requests.request(method, url, stream=True, timeout=(3, timeout), **kwargs)
