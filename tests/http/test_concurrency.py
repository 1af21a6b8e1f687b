"""Point 3: at most N open streams per key; however a stream ends, its slot is freed."""

from __future__ import annotations

import threading

import pytest
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse._settings import read_settings
from flask_ai_sse._slots import MemorySlots, RedisSlots
from flask_ai_sse.errors import ConfigurationError, ProviderError
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

from ..helpers import open_stream, wait_until
from .sse_client import LiveStream, call

KEY = "addr:127.0.0.1"  # the test client's address: no authorize hook here
LONG = FakeReply(text="word " * 400, delay=0.02)  # about 8 s unless stopped


#: One stream per key, and a short grace so that a disconnect frees its slot soon.
CAPPED = {"AI_SSE_KEEPALIVE": 5, "AI_SSE_MAX_STREAMS_PER_KEY": 1, "AI_SSE_DISCONNECT_GRACE": 0.05}


def scripted(*script: FakeReply) -> AISSE:
    return AISSE(provider=FakeProvider(script=script or [FakeReply(text="hi", delay=0)]))


def slots(app: Flask) -> MemorySlots:
    held = app.extensions["ai_sse"].guards.slots
    assert isinstance(held, MemorySlots)
    return held


def assert_capped(resp) -> None:
    assert resp.status_code == 429
    error = resp.get_json()["error"]
    assert error["type"] == "too_many_streams"
    assert int(resp.headers["Retry-After"]) >= 1


def test_the_next_stream_waits_until_one_ends_by_cancel(make_app):
    app = make_app(scripted(LONG, FakeReply(text="second", delay=0)), **CAPPED)
    client = app.test_client()
    first = client.get("/ai/stream?prompt=a", buffered=False)
    assert first.status_code == 200
    stream_id = next(iter(first.response)).split(b'"stream_id":"')[1].split(b'"')[0].decode()
    assert_capped(client.get("/ai/stream?prompt=b"))
    assert_capped(client.post("/ai/ask", json={"prompt": "b"}))
    assert client.post(f"/ai/streams/{stream_id}/cancel").status_code == 202
    wait_until(lambda: slots(app).count(KEY) == 0)
    assert collect(client.get("/ai/stream?prompt=c")).text == "second"
    first.close()


def test_done_frees_the_slot_before_the_client_sees_the_end(make_app):
    """A chat client sends its next message as soon as it reads [DONE]: no 429 for that."""
    app = make_app(scripted(), **CAPPED)
    client = app.test_client()
    for _ in range(3):
        assert collect(client.get("/ai/stream?prompt=x")).ended
        assert slots(app).count(KEY) == 0


def test_an_error_mid_stream_frees_the_slot(make_app):
    app = make_app(
        scripted(FakeReply(text="a b c", fail_after=1, delay=0), FakeReply(text="ok", delay=0)),
        **CAPPED,
    )
    client = app.test_client()
    result = collect(client.get("/ai/stream?prompt=x"))
    assert result.terminal is not None and result.terminal.event == "error"
    wait_until(lambda: slots(app).count(KEY) == 0)
    assert collect(client.get("/ai/stream?prompt=y")).text == "ok"


def test_a_disconnect_frees_the_slot_after_the_grace(make_app):
    app = make_app(scripted(LONG), **CAPPED)
    client = app.test_client()
    resp = client.get("/ai/stream?prompt=x", buffered=False)
    next(iter(resp.response))
    assert slots(app).count(KEY) == 1
    resp.close()  # the client left: after the grace the generation is stopped
    wait_until(lambda: slots(app).count(KEY) == 0)


def test_failures_before_a_stream_starts_never_hold_a_slot(make_app):
    app = make_app(
        scripted(FakeReply(fail_before=ProviderError("down")), FakeReply(text="ok", delay=0)),
        **CAPPED,
    )
    client = app.test_client()
    assert client.get("/ai/stream?prompt=x").status_code == 502
    assert client.post("/ai/stream", json={"prompt": 3}).status_code == 400
    assert client.post("/ai/ask", json={"prompt": "x"}).status_code == 200
    assert slots(app).count(KEY) == 0


def test_keys_are_counted_apart_and_the_default_is_off(make_app):
    ai = scripted(LONG, FakeReply(text="ok", delay=0))
    app = make_app(ai, **CAPPED)
    ai.authorize(lambda: __import__("flask").request.headers.get("X-User"))
    client = app.test_client()
    held = client.get("/ai/stream?prompt=x", headers={"X-User": "alice"}, buffered=False)
    assert held.status_code == 200
    assert client.get("/ai/stream?prompt=x", headers={"X-User": "bob"}).status_code == 200
    assert_capped(client.get("/ai/stream?prompt=x", headers={"X-User": "alice"}))
    held.close()
    off = make_app()
    assert off.extensions["ai_sse"].guards.slots is None


def test_slot_storage_follows_the_stream_store_unless_named(make_app):
    def slots_url(**config):
        return read_settings(config, {}).guards.slots_url

    assert slots_url() == "memory"
    assert slots_url(AI_SSE_STORE="redis://h/1") == "redis://h/1"
    assert slots_url(AI_SSE_MAX_STREAMS_STORAGE="redis://x/2") == "redis://x/2"
    for bad in ({"AI_SSE_MAX_STREAMS_PER_KEY": -1}, {"AI_SSE_MAX_STREAMS_STORAGE": "mongo://"}):
        with pytest.raises(ConfigurationError):
            make_app(scripted(), **{**CAPPED, **bad})


@pytest.mark.redis
def test_redis_slots_are_atomic_and_leased(redis_url):
    one, two = RedisSlots(redis_url, 3, lease=60), RedisSlots(redis_url, 3, lease=60)
    taken: list[object] = []
    lock = threading.Lock()

    def grab(slots: RedisSlots) -> None:
        slot = slots.take("k")
        if slot is not None:
            with lock:
                taken.append(slot)

    threads = [threading.Thread(target=grab, args=(s,)) for s in (one, two) * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)  # a few Redis round trips each; 5 s only stops a hang
    assert len(taken) == 3 and one.count("k") == 3
    for slot in taken:
        slot.release()  # type: ignore[attr-defined]
        slot.release()  # type: ignore[attr-defined]  # idempotent
    assert two.count("k") == 0
    dead = RedisSlots(redis_url, 1, lease=1)  # a worker that died: its lease runs out
    short = RedisSlots(redis_url, 1, lease=1)
    assert dead.take("dead") is not None and short.take("dead") is None
    dead.close()  # nobody renews its slot any more
    wait_until(lambda: short.take("dead") is not None, timeout=3)  # the lease is 1 s: 3x that
    for slots in (one, two, short):
        slots.close()


@pytest.mark.server
@pytest.mark.redis
def test_cap_is_shared_across_two_gunicorn_processes(gunicorn_server, redis_url):
    config = {
        "AI_SSE_MAX_STREAMS_PER_KEY": 2,
        "AI_SSE_MAX_STREAMS_STORAGE": redis_url,
        "AI_SSE_FAKE_RESPONSE": "{prompt}",
        "AI_SSE_FAKE_DELAY": 0.02,
        "AI_SSE_DISCONNECT_GRACE": 0.1,
        "AI_SSE_KEEPALIVE": 0.2,
    }
    app = "tests.apps.hardening_app:create_app()"
    one, two = gunicorn_server(config, app=app), gunicorn_server(config, app=app)
    alice = {"X-User": "alice"}
    long_prompt = "word " * 500  # 10 s of tokens unless stopped

    def start(server, prompt=long_prompt, headers=alice):
        return open_stream(
            f"{server.url}/ai/stream", method="POST", json={"prompt": prompt}, headers=headers
        )

    first, second = start(one), start(two)
    assert (first.status_code, second.status_code) == (200, 200)
    stream_id = LiveStream(first).stream_id
    for server in (one, two):
        capped = call("POST", f"{server.url}/ai/stream", json={"prompt": "x"}, headers=alice)
        assert capped.status_code == 429
        assert capped.json()["error"]["type"] == "too_many_streams"
        assert "Retry-After" in capped.headers
    bob = start(two, headers={"X-User": "bob"})
    assert bob.status_code == 200
    bob.close()

    def admitted(server) -> bool:
        resp = call("POST", f"{server.url}/ai/stream", json={"prompt": "short"}, headers=alice)
        if resp.status_code == 429:
            return False
        assert resp.status_code == 200
        assert collect(resp.content).ended  # done: frees it again
        return True

    # Cancel frees one slot, for the other process too...
    cancel = call("POST", f"{one.url}/ai/streams/{stream_id}/cancel", headers=alice)
    assert cancel.status_code == 202
    wait_until(lambda: admitted(two))
    first.close()
    # ...a short stream that ended by itself gave its slot back: the next one gets in too.
    wait_until(lambda: admitted(one))
    # A client that leaves frees its slot once the grace is over.
    third = start(one)
    assert third.status_code == 200
    assert (
        call("GET", f"{two.url}/ai/stream", params={"prompt": "x"}, headers=alice).status_code
        == 429
    )
    second.close()
    wait_until(lambda: admitted(two))
    third.close()
