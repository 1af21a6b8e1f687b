"""Exactly once: cut connections at random points hundreds of times, resume each time.

A client reads a random number of bytes (cutting events, lines and UTF-8 anywhere), drops
the connection, and reconnects with the id of the last event it fully received, as a
browser's EventSource does. The reassembled answer must be byte-identical, with every
event id exactly once and in order, and the provider asked once.
"""

from __future__ import annotations

import random

import pytest

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder

from ..helpers import open_stream

pytestmark = pytest.mark.server

WORDS = ["héllo", "wörld", "🙂", "line\nbreak", "\n\ndata: injected", "crlf\r\n", "end."]
TEXT = "".join(f"{WORDS[i % len(WORDS)]}{i} " for i in range(240))
CUTS_PER_STORE = 300


def follow_with_cuts(
    server, rng: random.Random, path: str, cuts: list[int]
) -> tuple[str, list[int]]:
    """Read one stream to [DONE] through as many dropped connections as it takes."""
    decoder = SSEDecoder()
    content: list[str] = []
    seqs: list[int] = []
    last_id: str | None = None
    url = f"{server.url}{path}"
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        resp = open_stream(url, headers=headers)
        assert resp.status_code == 200, resp.text
        budget = rng.randint(1, 600)  # bytes to read before cutting this connection
        finished = False
        for chunk in resp.raw.stream(rng.randint(1, 97), decode_content=False):
            for event in decoder.feed(chunk[:budget]):
                assert isinstance(event, ServerSentEvent)
                if event.data == "[DONE]":
                    finished = True
                    continue
                last_id = event.id
                stream_id, _, seq = event.id.rpartition(":")
                seqs.append(int(seq))
                if path.startswith("/ai/stream?"):
                    path = f"/ai/streams/{stream_id}"  # later reconnects may use either route
                if event.event == "message":
                    content.append(event.json()["content"])
            budget -= len(chunk)
            if budget <= 0 or finished:
                break
        resp.close()
        decoder.close()  # a new connection: drop the partial event, keep last_event_id
        if finished:
            return "".join(content), seqs
        cuts.append(1)
        url = f"{server.url}{path}" if rng.random() < 0.5 else url


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_random_cuts_lose_and_repeat_nothing(gunicorn_server, request, store):
    config = {
        "AI_SSE_FAKE_RESPONSE": TEXT,
        "AI_SSE_FAKE_DELAY": 0.002,
        "AI_SSE_DISCONNECT_GRACE": 5,
    }
    if store == "redis":
        config["AI_SSE_STORE"] = request.getfixturevalue("redis_url")
    server = gunicorn_server(config)
    rng = random.Random(20261121)
    cuts: list[int] = []
    streams = 0
    while len(cuts) < CUTS_PER_STORE:
        streams += 1
        text, seqs = follow_with_cuts(server, rng, "/ai/stream?prompt=x", cuts)
        assert text == TEXT
        assert seqs == list(range(1, len(seqs) + 1)), "an event was lost or repeated"
    assert streams >= 2
