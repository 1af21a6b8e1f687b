"""SIGTERM to a real gunicorn gevent server with the library's shutdown hooks
(``tests/apps/gunicorn_hooks.py``): generations finish, or end clearly, never ``streaming``.

The server runs with ``--graceful-timeout 5``: the drain's budget is at most 3 s.
The stored messages are read from the database once the server has exited.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from ..apps.persist_app import SLOW_TEXT, STEADY_TEXT, create_app
from ..helpers import Server
from .test_server import APP, SERVER_CONFIG, LiveStream, create

pytestmark = pytest.mark.server

HOOKS = ["-c", "python:tests.apps.gunicorn_hooks"]


def stored(database: dict[str, Any], ids: list[int]) -> dict[int, Any]:
    """The messages ``ids`` as the database holds them (status, content, meta)."""
    app = create_app(dict(database))
    db = app.extensions["test_db"]
    model = app.extensions["ai_sse"].extension.Message
    with app.app_context():
        rows = db.session.query(model).filter(model.id.in_(ids)).all()
        found = {m.id: (m.status, m.content, m.meta) for m in rows}
        db.session.remove()
        db.engine.dispose()
    return found


def start_unread(server: Server, prompt: str) -> dict[str, Any]:
    """A stream whose client reads its ``start`` event, then leaves."""
    live = LiveStream(server, prompt, create(server))
    live.read(1)
    live.resp.close()
    return live.start


def stop(server: Server) -> float:
    """SIGTERM to the master; the seconds until every process of the server exited.

    The worker must have exited by itself: gunicorn's master SIGKILLs one still there
    at ``graceful_timeout`` and says so in its log.
    """
    began = time.monotonic()
    server.stop(signal.SIGTERM, timeout=20)
    took = time.monotonic() - began
    log = server.output()
    assert server.proc.returncode == 0, log
    assert "SIGKILL" not in log and "graceful timeout" not in log, log
    return took


def test_sigterm_lets_unread_generations_finish(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """Policy ``finish``, nobody reading: without the hooks the worker exits at once and
    kills them (left ``streaming``); with them, they run to the end."""
    config = {**database, **SERVER_CONFIG, "AI_SSE_DISCONNECT_POLICY": "finish"}
    server = gunicorn_server(config, app=APP, extra_args=[*HOOKS, "--log-level", "info"])
    starts = [start_unread(server, f"steady {i}") for i in range(5)]
    stop(server)
    messages = stored(database, [s["message_id"] for s in starts])
    assert [status for status, _, _ in messages.values()] == ["completed"] * 5
    assert all(content == STEADY_TEXT for _, content, _ in messages.values())


def test_what_cannot_finish_in_time_ends_with_shutting_down(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """A 0.5 s budget against 20 s answers: the reader gets the ``shutting_down`` error
    and [DONE]; the read and the unread answers are stored ``failed``."""
    config = {
        **database,
        **SERVER_CONFIG,
        "AI_SSE_DISCONNECT_POLICY": "finish",
        "AI_SSE_SHUTDOWN_TIMEOUT": 0.5,
    }
    server = gunicorn_server(config, app=APP, extra_args=HOOKS)
    unread = start_unread(server, "slow and unread")
    live = LiveStream(server, "slow and read", create(server))
    live.read(3)
    server.proc.send_signal(signal.SIGTERM)
    live.read()  # to the end of the response
    error = [e for e in live.events if e.event == "error"]
    assert [json.loads(e.data)["error"]["type"] for e in error] == ["shutting_down"]
    assert live.events[-1].data == "[DONE]"
    assert live.text and SLOW_TEXT.startswith(live.text) and live.text != SLOW_TEXT
    stop(server)
    messages = stored(database, [unread["message_id"], live.start["message_id"]])
    for status, content, meta in messages.values():
        assert (status, meta["reason"]) == ("failed", "shutting_down")
        assert meta["error"]["type"] == "shutting_down"
        assert content and SLOW_TEXT.startswith(content)
    assert messages[live.start["message_id"]][1] == live.text


def test_a_worker_that_exits_by_itself_drains_with_its_heartbeat(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """``--max-requests 1``: the worker leaves after one stream, with no signal; it drains
    in ``worker_exit`` for 4 s, past ``--timeout 2``, and the master (which kills a
    worker silent for that long) leaves it be: its heartbeat goes on meanwhile."""
    config = {
        **database,
        **SERVER_CONFIG,
        "AI_SSE_DISCONNECT_POLICY": "finish",
        "AI_SSE_SHUTDOWN_TIMEOUT": 4,
    }
    extra = [*HOOKS, "--timeout", "2", "--graceful-timeout", "8", "--max-requests", "1"]
    server = gunicorn_server(config, app=APP, extra_args=extra)
    message_id = start_unread(server, "slow and unread")["message_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, content, meta = stored(database, [message_id])[message_id]
        if status != "streaming" or "WORKER TIMEOUT" in server.output():
            break
        time.sleep(0.2)  # polling the database, not an assertion
    log = server.output()
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log, log
    assert (status, meta["reason"]) == ("failed", "shutting_down"), log
    assert content and SLOW_TEXT.startswith(content)
    stop(server)


def test_a_quick_shutdown_ends_everything_at_once(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """SIGQUIT (gunicorn's quick shutdown): no wait, but still a clear end for everyone."""
    server = gunicorn_server({**database, **SERVER_CONFIG}, app=APP, extra_args=HOOKS)
    live = LiveStream(server, "slow and read", create(server))
    live.read(3)
    server.proc.send_signal(signal.SIGQUIT)
    live.read()
    error = [e for e in live.events if e.event == "error"]
    assert [json.loads(e.data)["error"]["type"] for e in error] == ["shutting_down"]
    assert live.events[-1].data == "[DONE]"
    stop(server)
    [(status, content, meta)] = stored(database, [live.start["message_id"]]).values()
    assert (status, meta["reason"], content) == ("failed", "shutting_down", live.text)


def test_a_quick_stop_during_a_graceful_one_ends_everything_at_once(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """SIGTERM (a 3 s drain), then SIGINT: gunicorn's master now kills the workers after
    2 s, so the drain under way ends its generations at once, before that."""
    server = gunicorn_server({**database, **SERVER_CONFIG}, app=APP, extra_args=HOOKS)
    live = LiveStream(server, "slow and read", create(server))
    live.read(3)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)  # the master passes SIGTERM on before it hears SIGINT (an ordering)
    server.proc.send_signal(signal.SIGINT)
    live.read()
    error = [e for e in live.events if e.event == "error"]
    assert [json.loads(e.data)["error"]["type"] for e in error] == ["shutting_down"]
    stop(server)
    [(status, _, meta)] = stored(database, [live.start["message_id"]]).values()
    assert (status, meta["reason"]) == ("failed", "shutting_down")
