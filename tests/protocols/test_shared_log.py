"""Readers of one live stream in different protocols, over memory and Redis stores and
across gunicorn workers: the same content, each resumable in its own protocol."""

from __future__ import annotations

import threading

import pytest
import requests

from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.engine import Engine, EngineSettings, MemoryStore
from flask_ai_sse.protocols import PROTOCOLS
from flask_ai_sse.testing import FakeProvider, FakeReply

from .decode import read

ASK = ChatRequest(messages=[{"role": "user", "content": "x"}], model="m")
TEXT = "alpha beta gamma delta epsilon zeta eta theta iota kappa"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def engine(request):
    if request.param == "memory":
        store = MemoryStore()
    else:
        from flask_ai_sse.engine.redis_store import RedisStore

        store = RedisStore(request.getfixturevalue("redis_url"))
    yield Engine(store, EngineSettings(keepalive=0.05))
    store.close()


def test_live_readers_in_three_protocols_get_the_same_answer(engine):
    provider = FakeProvider(script=[FakeReply(text=TEXT)], delay=0.01)
    gen = engine.start(provider.open(ASK))
    bodies: dict[str, bytes] = {}

    def follow(protocol: str) -> None:
        reader = engine.reader(gen.stream_id, protocol=protocol)
        try:
            bodies[protocol] = b"".join(reader)
        finally:
            reader.close()

    threads = [threading.Thread(target=follow, args=(p,)) for p in PROTOCOLS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert gen.done.wait(10)
    for protocol, body in bodies.items():
        got = read(protocol, body.replace(b": keepalive\n\n", b"").replace(b": keepalive\n", b""))
        assert got.text == TEXT and got.finish == "stop" and got.done, protocol


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_resuming_in_each_protocol_continues_exactly(engine, protocol):
    provider = FakeProvider(script=[FakeReply(text=TEXT)], delay=0)
    gen = engine.start(provider.open(ASK))
    assert gen.done.wait(10)
    whole = b"".join(engine.reader(gen.stream_id, protocol=protocol))
    for after in range(1, gen.seq):
        rest = b"".join(engine.reader(gen.stream_id, after, protocol=protocol))
        marker = f"id: {gen.stream_id}:{after}\n".encode()
        expected = whole[whole.rindex(marker) :].split(b"\n\n", 1)[1]
        prefix = b"" if protocol == "openai" else b"retry: 3000\n\n"
        assert rest == prefix + expected, after


@pytest.mark.server
@pytest.mark.redis
def test_two_workers_serve_one_stream_in_two_protocols(module_gunicorn, redis_url):
    server = module_gunicorn(
        {"AI_SSE_STORE": redis_url, "AI_SSE_FAKE_RESPONSE": TEXT, "AI_SSE_FAKE_DELAY": 0.05},
        workers=2,
    )
    first = requests.post(
        f"{server.url}/ai/stream?protocol=vercel", json={"prompt": "x"}, stream=True, timeout=10
    )
    pieces = first.iter_content(chunk_size=None)
    head = next(pieces)
    stream_id = head.split(b"id: ", 1)[1].split(b":", 1)[0].decode()
    others = {
        p: requests.get(f"{server.url}/ai/streams/{stream_id}?protocol={p}", timeout=10).content
        for p in ("openai", "default")
    }
    vercel = head + b"".join(pieces)
    assert read("vercel", vercel).text == TEXT
    for protocol, body in others.items():
        assert read(protocol, body).text == TEXT, protocol
