"""Keepalive, disconnect grace, cancel, timeouts, fan-out: over gunicorn gevent, seen upstream.

The upstream is the project's mock OpenAI server, in this process; the app runs under
``gunicorn -k gevent``. "Closed upstream" is always checked from the mock's side.
Its waits (``wait_for_open_streams(0, timeout=...)``, joins) end as soon as the state is
reached; their bounds are several times the grace or cancel path they wait on, a margin
for a loaded machine, not a measurement.
"""

from __future__ import annotations

import json
import socket
import struct
import threading

import pytest
import requests

from flask_ai_sse.sse import Comment, SSEDecoder
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock

from ..helpers import open_stream

pytestmark = pytest.mark.server

LONG = " ".join(f"w{i}" for i in range(400))


@pytest.fixture(scope="module")
def mock():
    with OpenAIMock(api_key="test-key") as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _reset(mock):
    mock.script(MockReply(text=LONG, delay=0.01))
    yield
    assert mock.wait_for_open_streams(0, timeout=10), "a test left an upstream stream open"


@pytest.fixture(scope="module")
def server(module_gunicorn, mock):
    return module_gunicorn(
        {
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": mock.base_url,
            "AI_SSE_API_KEY": "test-key",
            "AI_SSE_KEEPALIVE": 0.2,
            "AI_SSE_DISCONNECT_GRACE": 0.5,
            "AI_SSE_PROGRESS_EVERY": 50,
        }
    )


class Follower:
    """Reads one SSE response incrementally, with a timeout on every read."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, **kw) -> None:
        self.resp = open_stream(url, headers=headers, **kw)
        assert self.resp.status_code == 200, self.resp.text
        self._chunks = self.resp.iter_content(chunk_size=None)
        self._decoder = SSEDecoder(comments=True)
        self.items: list = []

    def until(self, predicate) -> list:
        for chunk in self._chunks:
            self.items.extend(self._decoder.feed(chunk))
            if predicate(self.items):
                return self.items
        return self.items

    def events(self):
        return [i for i in self.items if not isinstance(i, Comment)]

    def content(self) -> list[str]:
        return [
            json.loads(e.data)["content"]
            for e in self.events()
            if e.event == "message" and e.data != "[DONE]"
        ]

    def close(self) -> None:
        self.resp.close()


def n_messages(n):
    return lambda items: sum(1 for i in items if getattr(i, "event", None) == "message") >= n


def start_stream(server, **kw) -> tuple[Follower, str]:
    f = Follower(f"{server.url}/ai/stream", method="POST", json={"prompt": "go"}, **kw)
    f.until(lambda items: any(getattr(i, "event", None) == "start" for i in items))
    return f, f.events()[0].json()["stream_id"]


def test_keepalive_before_the_first_token_during_an_upstream_stall(server, mock):
    mock.script(MockReply(text="late answer", stall=1.0, at=0))
    f, _ = start_stream(server)
    items = f.until(n_messages(1))
    first = next(i for i, item in enumerate(items) if getattr(item, "event", None) == "message")
    keepalives = [i for i in items[:first] if isinstance(i, Comment)]
    assert keepalives and all(k.text == "keepalive" for k in keepalives)
    f.until(
        lambda items: (
            items[-1].__class__.__name__ == "ServerSentEvent" and items[-1].data == "[DONE]"
        )
    )
    assert "".join(f.content()) == "late answer"


def test_disconnect_keeps_generating_through_the_grace_then_closes_upstream(server, mock):
    requests_before = len(mock.requests)
    f, stream_id = start_stream(server)
    f.until(n_messages(3))
    last_id = f.events()[-1].id
    f.close()  # FIN
    # Within the grace a reconnecting client resumes the same generation.
    again = Follower(f"{server.url}/ai/streams/{stream_id}", headers={"Last-Event-ID": last_id})
    again.until(n_messages(2))
    again.close()
    # Nobody comes back: after the grace the upstream request is closed.
    assert mock.wait_for_open_streams(0, timeout=5)
    assert len(mock.requests) == requests_before + 1  # resumed, never generated twice
    tail = collect(requests.get(f"{server.url}/ai/streams/{stream_id}", timeout=5).content)
    assert tail.terminal.event == "done"
    assert tail.terminal.json()["finish_reason"] == "cancelled"


def test_disconnect_with_rst_closes_upstream(server, mock):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /ai/stream?prompt=x HTTP/1.1\r\nHost: t\r\n\r\n")
    received = b""
    while received.count(b'"content"') < 2:
        chunk = sock.recv(4096)
        assert chunk
        received += chunk
    assert mock.open_streams == 1
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # RST
    assert mock.wait_for_open_streams(0, timeout=5)


@pytest.mark.parametrize("where", ["mid-token", "mid-stall"])
def test_cancel_stops_generation_and_closes_upstream(server, mock, where):
    if where == "mid-stall":
        mock.script(MockReply(text=LONG, stall=30, at=3))
    f, stream_id = start_stream(server)
    f.until(n_messages(3 if where == "mid-stall" else 5))
    resp = requests.post(f"{server.url}/ai/streams/{stream_id}/cancel", timeout=5)
    assert resp.status_code == 202
    f.until(lambda items: getattr(items[-1], "data", None) == "[DONE]")
    done = [e for e in f.events() if e.event == "done"]
    assert len(done) == 1 and done[0].json()["finish_reason"] == "cancelled"
    assert not [e for e in f.events() if e.event == "error"]
    assert mock.wait_for_open_streams(0, timeout=3)


def test_fan_out_two_clients_get_identical_events(server, mock):
    requests_before = len(mock.requests)
    f, stream_id = start_stream(server)
    other = Follower(f"{server.url}/ai/streams/{stream_id}")
    done = lambda items: getattr(items[-1], "data", None) == "[DONE]"  # noqa: E731
    results = {}
    t = threading.Thread(target=lambda: results.setdefault("other", other.until(done)))
    t.start()
    f.until(done)
    t.join(20)  # the answer streams in about 4 s; the margin is for a loaded machine
    strip = lambda f: [(e.event, e.id, e.data) for e in f.events()]  # noqa: E731
    assert strip(f) == strip(other)
    assert "".join(f.content()) == LONG
    assert len(mock.requests) == requests_before + 1


def test_progress_events(server, mock):
    f, _ = start_stream(server)
    f.until(lambda items: getattr(items[-1], "data", None) == "[DONE]")
    progress = [e.json() for e in f.events() if e.event == "progress"]
    assert progress and set(progress[0]) == {
        "chunks",
        "characters",
        "elapsed",
        "characters_per_second",
    }
    assert progress[0]["chunks"] == 50


def test_stream_timeouts(gunicorn_server, mock):
    mock.script(MockReply(text=LONG, stall=30, at=2))
    server = gunicorn_server(
        {
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": mock.base_url,
            "AI_SSE_API_KEY": "test-key",
            "AI_SSE_READ_TIMEOUT": 0.5,
            "AI_SSE_KEEPALIVE": 0.2,
        }
    )
    silent = collect(open_stream(f"{server.url}/ai/stream?prompt=x").iter_content(chunk_size=None))
    assert silent.terminal.event == "error"
    assert silent.terminal.json()["error"]["type"] == "timeout"
    assert silent.ended
    assert mock.wait_for_open_streams(0, timeout=3)

    mock.script(MockReply(text=LONG, delay=0.05))
    total = gunicorn_server(
        {
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": mock.base_url,
            "AI_SSE_API_KEY": "test-key",
            "AI_SSE_STREAM_TIMEOUT": 0.6,
        }
    )
    long = collect(open_stream(f"{total.url}/ai/stream?prompt=x").iter_content(chunk_size=None))
    assert long.terminal.json()["error"]["type"] == "timeout"
    assert 0 < len(long.text) < len(LONG)
    assert long.ended
