"""Store faults in-process: lost replies, the reading loop, heartbeats, the watchdog, pools."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from flask_ai_sse._redis_client import RedisOptions
from flask_ai_sse._slots import RedisSlots
from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.engine import Engine, EngineSettings, MemoryStore
from flask_ai_sse.engine.protocol import END
from flask_ai_sse.engine.redis_store import RedisStore
from flask_ai_sse.errors import StoreError
from flask_ai_sse.testing import FakeProvider, FakeReply

from ..helpers import wait_until

ASK = ChatRequest(messages=[{"role": "user", "content": "x"}], model="m")


@pytest.fixture
def stores(redis_url):
    made: list[RedisStore] = []

    def make(**options: Any) -> RedisStore:
        options.setdefault("ttl", 60)
        made.append(RedisStore(redis_url, **options))
        return made[-1]

    yield make
    for store in made:
        store.close()


def log_of(store: RedisStore, stream_id: str) -> list[bytes]:
    entries = store._redis.xrange(store._keys(stream_id)[0])
    return [fields[b"d"] for _, fields in entries]


@pytest.mark.redis
def test_an_append_whose_reply_was_lost_is_sent_again_and_the_end_still_lands(stores):
    """Redis applied the append but the reply timed out: the writer must not fall behind,
    or the terminal event would land on a used number and be dropped."""
    store = stores()
    store.create("s", {})
    store.append("s", [b"start"])
    real = store._append

    def applied_then_lost(**kwargs: Any) -> Any:
        real(**kwargs)
        raise redis.TimeoutError("Timeout reading from socket")

    store._append = applied_then_lost  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        store.append("s", [b"t1", b"t2"])
    assert store.unwritten("s") == 2
    store._append = real  # type: ignore[method-assign]
    store._retry_at["s"] = 0.0  # no need to wait for the retry interval here
    assert store.append("s", [b"t3"]) == 4
    assert store.append("s", [b"error", b"[DONE]"], final=True) == 6
    assert log_of(store, "s") == [b"start", b"t1", b"t2", b"t3", b"error", b"[DONE]"]
    assert store.read("s", 0, 0) == (log_of(store, "s"), True)


@pytest.mark.redis
def test_while_redis_fails_appends_queue_without_a_round_trip_each(stores):
    store = stores(retry_interval=30)
    store.create("s", {})
    calls = []
    real = store._append

    def failing(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise redis.ConnectionError("down")

    store._append = failing  # type: ignore[method-assign]
    for n in range(50):
        with pytest.raises(StoreError):
            store.append("s", [f"t{n}".encode()])
    assert len(calls) == 1 and store.unwritten("s") == 50
    store._append = real  # type: ignore[method-assign]
    store._retry_at["s"] = 0.0
    assert store.append("s", [b"end"], final=True) == 51
    assert log_of(store, "s") == [f"t{n}".encode() for n in range(50)] + [b"end"]


class FlakyStore(MemoryStore):
    """A memory store whose appends fail while ``down`` is set, keeping their entries."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()
        self.queued: list[bytes] = []

    def append(self, stream_id: str, entries: list[bytes], *, final: bool = False) -> int:
        self.queued.extend(entries)
        if self.down.is_set():
            raise StoreError()
        entries, self.queued = self.queued, []
        return super().append(stream_id, entries, final=final)

    def unwritten(self, stream_id: str) -> int:
        return len(self.queued)


def test_a_producer_rides_out_an_outage_within_the_budget():
    store = FlakyStore()
    provider = FakeProvider(script=["one two three four five six"], delay=0.05)
    gen = Engine(store, EngineSettings(store_outage_budget=5)).start(provider.open(ASK))
    store.down.set()
    time.sleep(0.2)  # tokens arrive meanwhile: the fault being simulated, not an assertion
    assert store.unwritten(gen.stream_id) > 0
    store.down.clear()
    assert gen.done.wait(10)
    assert gen.status == "completed"
    entries, final = store.read(gen.stream_id, 0, 0)  # type: ignore[misc]
    assert final and entries[-2].startswith(b"done\n") and entries[-1] == END
    assert not any(e.startswith(b"error\n") for e in entries)


def test_a_producer_gives_up_beyond_the_budget_with_one_store_error():
    store = FlakyStore()
    provider = FakeProvider(script=[" ".join(["w"] * 100)], delay=0.02)
    gen = Engine(store, EngineSettings(store_outage_budget=1.0)).start(provider.open(ASK))
    store.down.set()
    threading.Timer(1.5, store.down.clear).start()  # back while the end is being retried
    assert gen.done.wait(10)
    assert gen.status == "failed"
    assert gen.error is not None and gen.error.type == "store_unavailable"
    entries, final = store.read(gen.stream_id, 0, 0)  # type: ignore[misc]
    assert final and [e for e in entries if e.startswith(b"error\n")] == [entries[-2]]
    assert b"store_unavailable" in entries[-2]


class FailingListeners(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def listeners(self, stream_id: str) -> int:
        if self.failing:
            raise StoreError()
        return super().listeners(stream_id)


def test_the_watchdog_survives_store_errors_and_acts_once_the_store_is_back():
    store = FailingListeners()
    engine = Engine(store, EngineSettings(disconnect_grace=0.2, total_timeout=0, silence_timeout=0))
    provider = FakeProvider(script=[FakeReply(text="a b c", stall=30, stall_after=1)], delay=0)
    gen = engine.start(provider.open(ASK))
    store.attach(gen.stream_id)
    engine._detached(gen.stream_id)  # orphaned: the watchdog asks the store after the grace
    assert gen.orphaned_at is not None
    engine.check(gen.orphaned_at + 1)  # the store fails: no exception, looked at again later
    assert gen.abort_reason is None
    assert engine._watchdog is not None and engine._watchdog.is_alive()
    store.failing = False
    wait_until(lambda: gen.abort_reason == "disconnected", what="the retried grace check")
    assert gen.done.wait(5) and gen.status == "cancelled"


def test_the_watchdog_thread_outlives_a_check_that_raises(monkeypatch):
    engine = Engine(MemoryStore(), EngineSettings(disconnect_grace=0.1))
    calls: list[float] = []

    def boom(now: float) -> None:
        calls.append(now)
        raise RuntimeError("a bug")

    monkeypatch.setattr(engine, "check", boom)
    engine._ensure_watchdog()
    wait_until(lambda: len(calls) >= 3, what="three ticks")
    assert engine._watchdog is not None and engine._watchdog.is_alive()


@pytest.mark.redis
def test_a_producer_that_stops_beating_is_ended_once_as_interrupted(stores):
    producer = stores(heartbeat=0.2, lapse=1.0)
    readers = [stores(heartbeat=0.2, lapse=1.0) for _ in range(2)]
    noticed: list[tuple[int, str]] = []
    for n, store in enumerate(readers):
        store.on_interrupted.append(lambda sid, n=n: noticed.append((n, sid)))
    producer.create("s", {})
    producer.append("s", [b"start"])
    producer.watch("s", lambda name: None)  # beating
    for store in readers:
        store.attach("s")
        assert store.read("s", 0, 0) == ([b"start"], False)
    assert producer.producer_alive("s") is True
    assert readers[0].read("s", 1, 1.5) == ([], False)  # beats: nothing happens
    producer.close()  # the worker dies: no more beats
    results = [store.read("s", 1, 5) for store in readers]
    for entries, final in results:  # type: ignore[misc]
        assert final and len(entries) == 2
        assert entries[0].startswith(b"error\n") and b'"interrupted"' in entries[0]
        assert entries[1] == END
    wait_until(lambda: noticed, what="the hook")
    time.sleep(0.5)  # a second notice would come within a check period: not an assertion
    assert [sid for _, sid in noticed] == ["s"]
    assert readers[0].producer_alive("s") is False


def checked_out(pool: Any) -> int:
    """Connections of a blocking pool in use now."""
    idle = {id(c) for c in list(pool.pool.queue) if c is not None}
    return sum(1 for c in pool._connections if id(c) not in idle)


@pytest.mark.redis
def test_followers_share_one_connection_whatever_their_number(stores, redis_url):
    store = stores()
    for n in range(50):
        store.create(f"s{n}", {})
        store.append(f"s{n}", [b"start"])
    waiting = []
    with ThreadPoolExecutor(max_workers=50) as pool:
        for n in range(50):
            store.attach(f"s{n}")
            waiting.append(pool.submit(store.read, f"s{n}", 1, 10))
        mirrors = store._hub.mirrors
        wait_until(lambda: all(m.started for m in mirrors.values()) and store._hub._blocked)
        pools = (store._redis.connection_pool, store._hub._pool)
        # 50 readers wait, holding no connection: only the reading loop's XREAD does
        # (once the last readers' kicks, CLIENT UNBLOCK, are back).
        wait_until(lambda: sum(checked_out(p) for p in pools) == 1, timeout=5)
        for n in range(50):
            store.append(f"s{n}", [f"t{n}".encode()])
        assert [f.result(timeout=10) for f in waiting] == [
            ([f"t{n}".encode()], False) for n in range(50)
        ]


@pytest.mark.redis
def test_slots_wait_for_a_connection_instead_of_refusing(redis_url):
    slots = RedisSlots(
        redis_url, 1000, lease=60, options=RedisOptions(max_connections=2, pool_timeout=5)
    )
    try:
        with ThreadPoolExecutor(max_workers=40) as pool:
            taken = list(pool.map(lambda n: slots.take(f"k{n % 4}"), range(200)))
        assert all(slot is not None for slot in taken)
        assert sum(slots.count(f"k{n}") for n in range(4)) == 200
        for slot in taken:
            slot.release()  # type: ignore[union-attr]
        assert slots.count("k0") == 0
    finally:
        slots.close()


@pytest.mark.redis
def test_a_slot_lives_while_its_process_renews_it_and_frees_after_its_death(redis_url):
    alive = RedisSlots(redis_url, 1, lease=1.5)
    dead = RedisSlots(redis_url, 1, lease=1.5)
    try:
        kept = alive.take("a")
        assert kept is not None and dead.take("d") is not None
        dead.close()  # the worker died holding its slot: nobody renews it
        wait_until(lambda: alive.count("d") == 0, timeout=5, what="the dead slot to free")
        assert alive.count("a") == 1  # renewed every 0.5 s: past its first lease, still held
        assert alive.take("a") is None
        kept.release()
        assert alive.count("a") == 0
    finally:
        alive.close()
