"""Shutdown with a shared store: a worker drained on SIGTERM (``tests/apps/gunicorn_hooks``)
ends its generations for readers on other servers too, and a reconnect replays the end.

Two gunicorn gevent servers share one Redis: A (with the hooks, a 0.5 s budget) runs the
generation; B serves a follower and the reconnect.
"""

from __future__ import annotations

import json
import signal

import pytest

from flask_ai_sse.testing import StreamResult, collect

from ..helpers import events, open_stream, require_redis

pytestmark = [pytest.mark.server, pytest.mark.redis]

LONG = " ".join(f"w{i}" for i in range(300))  # 15 s at 50 ms a word


def test_a_drained_generation_ends_for_readers_everywhere(gunicorn_server):
    config = {
        "AI_SSE_STORE": require_redis(),
        "AI_SSE_KEEPALIVE": 0.2,
        "AI_SSE_FAKE_DELAY": 0.05,
        "AI_SSE_FAKE_RESPONSE": LONG,
    }
    a = gunicorn_server(
        {**config, "AI_SSE_SHUTDOWN_TIMEOUT": 0.5},
        extra_args=["-c", "python:tests.apps.gunicorn_hooks"],
    )
    b = gunicorn_server(config)
    on_a = open_stream(f"{a.url}/ai/stream", method="POST", json={"prompt": "x"})
    live = events(on_a)
    head = [next(live) for _ in range(4)]
    stream_id = head[0].json()["stream_id"]
    on_b = open_stream(f"{b.url}/ai/streams/{stream_id}")
    assert on_b.status_code == 200

    a.proc.send_signal(signal.SIGTERM)
    seen_on_a = StreamResult(head + list(live))
    seen_on_b = collect(on_b.iter_content(chunk_size=None))
    for result in (seen_on_a, seen_on_b):
        assert result.terminal.event == "error"
        assert json.loads(result.terminal.data)["error"]["type"] == "shutting_down"
        assert result.ended
        assert LONG.startswith(result.text) and len(result.text) < len(LONG)
    assert seen_on_b.text == seen_on_a.text

    # The browser's reconnect, after A is gone, lands on B and gets the same clear end.
    a.stop()
    again = open_stream(
        f"{b.url}/ai/stream", params={"prompt": "x"}, headers={"Last-Event-ID": head[-1].id}
    )
    assert again.status_code == 200, again.text
    tail = collect(again.iter_content(chunk_size=None))
    assert json.loads(tail.terminal.data)["error"]["type"] == "shutting_down"
    assert StreamResult(head + tail.events).text == seen_on_a.text
