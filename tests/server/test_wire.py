"""The contract's wire format, byte for byte, over a real gunicorn gevent server."""

from __future__ import annotations

import json
import re
import socket

import pytest

from flask_ai_sse.testing import collect

from ..helpers import open_stream

pytestmark = pytest.mark.server

TEXT = "Hello, wire!\n\ndata: not an event\r\nevent: nope"


@pytest.fixture(scope="module")
def server(module_gunicorn):
    return module_gunicorn({"AI_SSE_FAKE_RESPONSE": TEXT, "AI_SSE_FAKE_DELAY": 0.001})


def test_stream_bytes_follow_the_contract(server):
    resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "hi"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert "no-cache" in resp.headers["Cache-Control"]
    assert "no-transform" in resp.headers["Cache-Control"]
    assert resp.headers["X-Accel-Buffering"] == "no"
    body = b"".join(resp.iter_content(chunk_size=None))

    assert body.startswith(b"retry: 3000\n\nevent: start\nid: ")
    assert body.endswith(b"\n\ndata: [DONE]\n\n")
    blocks = body.decode().split("\n\n")[:-1]
    assert blocks[0] == "retry: 3000"
    start_id = re.fullmatch(r"event: start\nid: (\S+)\ndata: (.*)", blocks[1])
    assert start_id is not None
    stream_id = json.loads(start_id.group(2))["stream_id"]
    seq = 1
    assert start_id.group(1) == f"{stream_id}:{seq}"
    for block in blocks[2:-2]:
        seq += 1
        match = re.fullmatch(r"id: (\S+)\ndata: (\{.*\})", block)
        assert match is not None, block
        assert match.group(1) == f"{stream_id}:{seq}"
        assert list(json.loads(match.group(2))) == ["content"]
    done = re.fullmatch(r"event: done\nid: (\S+)\ndata: (\{.*\})", blocks[-2])
    assert done is not None and done.group(1) == f"{stream_id}:{seq + 1}"
    assert json.loads(done.group(2))["finish_reason"] == "stop"
    assert blocks[-1] == "data: [DONE]"

    result = collect(body)
    assert result.text == TEXT  # line breaks and 'data:' inside text arrive whole
    assert [e.event for e in result.events][:1] == ["start"]
    assert result.ended


def test_no_hop_by_hop_headers_from_the_app(server):
    """PEP 3333: the app sets no Connection header; gunicorn may add its own, once."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /ai/stream?prompt=x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk
            head += chunk
    headers = head.split(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    assert headers[0].startswith("http/1.1 200")
    assert sum(h.startswith("connection:") for h in headers) <= 1
    assert not any(h.startswith("keep-alive:") for h in headers)


def test_get_stream_for_eventsource(server):
    resp = open_stream(f"{server.url}/ai/stream", params={"prompt": "hi"})
    result = collect(resp.iter_content(chunk_size=None))
    assert result.text == TEXT
    assert json.loads(result.terminal.data)["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({}, 400, "missing_prompt"),
        ({"prompt": ""}, 400, "empty_value"),
        ({"prompt": 5}, 400, "invalid_type"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_role"),
        ({"messages": [{"role": "user", "content": 3}]}, 400, "invalid_type"),
        ({"prompt": "x", "temperature": 9}, 400, "out_of_range"),
        ({"prompt": "x", "temperature": "hot"}, 400, "invalid_type"),
        ({"prompt": "x" * 40_000}, 400, "too_long"),
        ([1, 2], 400, "invalid_body"),
    ],
)
def test_bad_input_is_a_json_4xx_never_a_stream(server, body, status, kind):
    resp = open_stream(f"{server.url}/ai/stream", method="POST", json=body)
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["type"] == kind
    assert resp.json()["error"]["message"]


def test_malformed_and_missing_bodies(server):
    url = f"{server.url}/ai/stream"
    bad = open_stream(
        url, method="POST", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert (bad.status_code, bad.json()["error"]["type"]) == (400, "invalid_json")
    empty = open_stream(url, method="POST", headers={"Content-Type": "application/json"})
    assert (empty.status_code, empty.json()["error"]["type"]) == (400, "missing_body")
    form = open_stream(url, method="POST", data={"prompt": "x"})
    assert (form.status_code, form.json()["error"]["type"]) == (415, "unsupported_media_type")
    huge = open_stream(
        url,
        method="POST",
        data=b"{" + b" " * 300_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert (huge.status_code, huge.json()["error"]["type"]) == (413, "payload_too_large")


def test_ask_returns_the_whole_answer(server):
    resp = open_stream(f"{server.url}/ai/ask", method="POST", json={"prompt": "hi"})
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["text"] == TEXT
    assert answer["finish_reason"] == "stop"
    assert answer["provider"] == "fake"
