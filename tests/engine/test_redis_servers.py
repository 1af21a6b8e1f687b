"""Two gunicorn gevent servers, A and B, sharing one Redis store.

A stream started on A resumes on B, is followed from both, and is cancelled
through B; a Redis that is down, or goes away mid-stream, never hangs a client.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import requests

from flask_ai_sse.testing import StreamResult, collect

from ..helpers import events, open_stream, require_redis
from .redis_kit import TcpProxy, refused_port

pytestmark = [pytest.mark.server, pytest.mark.redis]

TEMPLATE = (
    "Réponse à « {prompt} »:\n\n"
    + " ".join(f"mot{i}" for i in range(70))
    + "\n\ndata: not an event\r\nfin 🙂."
)


def stream_ids(evs) -> list[str]:
    return [e.id for e in evs if e.data != "[DONE]"]


@pytest.fixture(scope="module")
def pair(module_gunicorn):
    config = {
        "AI_SSE_STORE": require_redis(),
        "AI_SSE_KEEPALIVE": 0.2,
        "AI_SSE_FAKE_DELAY": 0.02,
        "AI_SSE_FAKE_RESPONSE": TEMPLATE,
        "AI_SSE_DISCONNECT_GRACE": 5,
    }
    return module_gunicorn(config), module_gunicorn(config)


@pytest.mark.parametrize("route", ["attach", "eventsource"])
def test_a_stream_started_on_a_resumes_on_b_exactly_once(pair, route):
    a, b = pair
    first = open_stream(f"{a.url}/ai/stream", method="POST", json={"prompt": route})
    assert first.status_code == 200
    live = events(first)
    head = [next(live) for _ in range(8)]  # start + 7 tokens
    first.close()  # the connection drops mid-answer
    stream_id = head[0].json()["stream_id"]

    headers = {"Last-Event-ID": head[-1].id}
    url = f"{b.url}/ai/streams/{stream_id}" if route == "attach" else f"{b.url}/ai/stream"
    resumed = open_stream(url, params={"prompt": route}, headers=headers)
    assert resumed.status_code == 200
    tail = collect(resumed.iter_content(chunk_size=None)).events

    whole = StreamResult(head + tail)
    seqs = range(1, len(stream_ids(whole.events)) + 1)
    assert stream_ids(whole.events) == [f"{stream_id}:{n}" for n in seqs]  # none lost or repeated
    assert [e.event for e in whole.events].count("start") == 1  # no second generation
    assert whole.text == TEMPLATE.format(prompt=route)
    assert json.loads(whole.terminal.data)["finish_reason"] == "stop"
    assert whole.ended


def test_clients_on_a_and_b_follow_one_stream_and_get_identical_events(pair):
    a, b = pair
    on_a = open_stream(f"{a.url}/ai/stream", method="POST", json={"prompt": "fan-out"})
    live = events(on_a)
    start = next(live)
    on_b = open_stream(f"{b.url}/ai/streams/{start.json()['stream_id']}")
    seen_a = [start, *live]
    seen_b = collect(on_b.iter_content(chunk_size=None)).events
    assert [(e.event, e.id, e.data) for e in seen_b] == [(e.event, e.id, e.data) for e in seen_a]
    assert StreamResult(seen_b).text == TEMPLATE.format(prompt="fan-out")
    assert StreamResult(seen_b).ended


def test_a_cancel_through_b_stops_the_generation_running_on_a(pair):
    a, b = pair
    on_a = open_stream(f"{a.url}/ai/stream", method="POST", json={"prompt": "cancel"})
    live = events(on_a)
    head = [next(live) for _ in range(4)]
    stream_id = head[0].json()["stream_id"]
    answer = requests.post(f"{b.url}/ai/streams/{stream_id}/cancel", timeout=5)
    assert answer.status_code == 202
    result = StreamResult(head + list(live))
    assert result.terminal.event == "done"
    assert json.loads(result.terminal.data)["finish_reason"] == "cancelled"
    assert result.ended
    full = TEMPLATE.format(prompt="cancel")
    assert full.startswith(result.text) and len(result.text) < len(full)


def test_the_servers_warn_about_nothing(pair):
    for server in pair:
        assert "flask_ai_sse" not in server.output() and "AI_SSE_STORE" not in server.output()


def test_redis_down_is_a_503_before_the_stream_and_never_hangs(gunicorn_server):
    with refused_port() as port:
        server = gunicorn_server({"AI_SSE_STORE": f"redis://127.0.0.1:{port}/15"})
        calls = [
            ("POST", "/ai/stream", {"json": {"prompt": "x"}}),
            ("GET", "/ai/stream?prompt=x", {"headers": {"Last-Event-ID": "abc:3"}}),
            ("GET", "/ai/streams/abc", {}),
            ("POST", "/ai/streams/abc/cancel", {}),
        ]
        for method, path, kwargs in calls:
            resp = open_stream(f"{server.url}{path}", method=method, timeout=10, **kwargs)
            assert resp.status_code == 503, (path, resp.text)
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.json()["error"]["type"] == "store_unavailable"


def test_redis_lost_mid_stream_ends_the_response_with_an_error_event(gunicorn_server, redis_url):
    target = urlsplit(redis_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    try:
        server = gunicorn_server(
            {
                "AI_SSE_STORE": f"{proxy.url}{target.path}",
                "AI_SSE_FAKE_RESPONSE": TEMPLATE,
                "AI_SSE_FAKE_DELAY": 0.02,
                "AI_SSE_KEEPALIVE": 0.2,
            }
        )
        resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "x"})
        live = events(resp)
        head = [next(live) for _ in range(3)]
        proxy.cut()
        result = StreamResult(head + list(live))  # it ends: a hang would fail the read timeout
        assert result.terminal.event == "error"
        assert result.terminal.json()["error"]["type"] == "store_unavailable"
        assert result.ended
    finally:
        proxy.close()
