"""Serving: start-up warnings about what breaks streaming, graceful reload."""

from __future__ import annotations

import json
import logging
import signal
import threading

import pytest
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse.engine import MemoryStore
from flask_ai_sse.testing import StreamResult, collect

from ..helpers import events, open_stream, wait_until

GUNICORN = {"SERVER_SOFTWARE": "gunicorn/27.0.1"}


class SharedStore(MemoryStore):
    """Stands in for a store shared across processes (Redis) without needing one."""

    shared = True


class GzipMiddleware:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


def warnings_of(caplog, app: Flask, environ: dict, *, requests: int = 1) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_ai_sse"):
        for _ in range(requests):
            app.test_client().post("/ai/ask", json={"prompt": "x"}, environ_overrides=environ)
    return [r.getMessage() for r in caplog.records]


def test_no_warning_when_nothing_is_wrong(caplog, make_app):
    assert warnings_of(caplog, make_app(), {}) == []


def test_memory_store_with_several_workers_warns_once(caplog, make_app):
    found = warnings_of(caplog, make_app(), {"wsgi.multiprocess": True}, requests=3)
    assert len(found) == 1
    assert "AI_SSE_STORE is 'memory'" in found[0] and "redis://" in found[0]


def test_a_shared_store_with_several_workers_is_fine(caplog, make_app):
    assert (
        warnings_of(caplog, make_app(AISSE(store=SharedStore())), {"wsgi.multiprocess": True}) == []
    )


def test_gunicorn_sync_worker_warns(caplog, make_app):
    [found] = warnings_of(caplog, make_app(), GUNICORN)  # this process is not gevent-patched
    assert "sync worker" in found and "--timeout" in found and "-k gevent" in found


def test_gunicorn_gthread_worker_warns(caplog, make_app):
    app = make_app()
    found: list[list[str]] = []
    thread = threading.Thread(target=lambda: found.append(warnings_of(caplog, app, GUNICORN)))
    thread.start()
    thread.join(10)  # one in-process request: milliseconds; 10 s only stops a hang
    [[message]] = found
    assert "threads" in message and "--threads" in message


def test_compression_middleware_warns(caplog, make_app):
    app = make_app()
    app.wsgi_app = GzipMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    [found] = warnings_of(caplog, app, {})
    assert "GzipMiddleware compresses responses" in found
    assert "text/event-stream" in found


@pytest.mark.parametrize(
    ("mimetypes", "warned"), [(["text/html"], False), (["text/event-stream"], True)]
)
def test_flask_compress_warns_only_when_it_compresses_event_streams(
    caplog, mimetypes, warned, make_app
):
    def after_request(response):
        return response

    after_request.__module__ = "flask_compress.flask_compress"
    app = make_app()
    app.config["COMPRESS_MIMETYPES"] = mimetypes
    app.after_request(after_request)
    assert bool(warnings_of(caplog, app, {})) is warned


@pytest.mark.server
def test_a_real_sync_gunicorn_with_two_workers_gets_both_warnings(gunicorn_server):
    server = gunicorn_server({}, workers=2, extra_args=["-k", "sync"])
    resp = open_stream(f"{server.url}/ai/stream?prompt=x")
    assert collect(resp.iter_content(chunk_size=None)).ended
    log = wait_until(
        lambda: "sync worker" in server.output() and server.output(), what="the warnings"
    )
    assert "AI_SSE_STORE is 'memory' but the server runs several worker processes" in log


@pytest.mark.server
def test_a_graceful_reload_does_not_cut_a_running_stream(gunicorn_server):
    """``kill -HUP``: new workers start, old ones finish their streams (shorter than
    graceful_timeout, 5 s here) before they exit."""
    text = " ".join(f"word{i}" for i in range(60))  # about 1.8 s at 30 ms a token
    server = gunicorn_server(
        {"AI_SSE_FAKE_RESPONSE": text, "AI_SSE_FAKE_DELAY": 0.03, "AI_SSE_KEEPALIVE": 0.2},
        extra_args=["--log-level", "info"],
    )
    resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "x"})
    live = events(resp)
    head = [next(live) for _ in range(3)]
    server.proc.send_signal(signal.SIGHUP)
    result = StreamResult(head + list(live))
    assert result.text == text
    assert json.loads(result.terminal.data)["finish_reason"] == "stop"
    assert result.ended
    after = open_stream(f"{server.url}/ai/stream?prompt=again")  # the new workers serve
    assert collect(after.iter_content(chunk_size=None)).ended
    log = server.output()
    assert "Hang up: Master" in log and log.count("Booting worker") == 2  # it did reload
