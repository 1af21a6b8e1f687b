"""The stream stores: one contract for memory and Redis, then what only Redis does.

Redis tests run against the real server (``redis_url``: ``TEST_REDIS_URL``, its db
flushed); under ``CI=true`` they fail when it is missing.
"""

from __future__ import annotations

import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import redis

from flask_ai_sse.engine import MemoryStore, StreamStore, create_store
from flask_ai_sse.engine.redis_store import RedisStore
from flask_ai_sse.errors import ConfigurationError, StoreError, StreamGapError

from ..helpers import wait_until
from .redis_kit import TcpProxy, refused_port


class Signals:
    """A signal handler that records what it got, for waiting on from the test."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.arrived = threading.Condition()

    def __call__(self, name: str) -> None:
        with self.arrived:
            self.got.append(name)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.got) >= count, timeout), self.got
        return self.got


@pytest.fixture
def make_redis_store(redis_url):
    stores: list[RedisStore] = []

    def make(url: str = redis_url, **options) -> RedisStore:
        options.setdefault("ttl", 60)
        options.setdefault("max_events", 5)
        stores.append(RedisStore(url, **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request) -> StreamStore:
    if request.param == "memory":
        return MemoryStore(ttl=60, max_events=5)
    return request.getfixturevalue("make_redis_store")()


# -- the contract both stores keep -----------------------------------------------------


def test_append_read_replay_and_end(store):
    store.create("s", {"owner": "ann"})
    assert store.append("s", [b"a", b"b"]) == 2
    assert store.append("s", [b"c"]) == 3
    assert store.read("s", 0, 0) == ([b"a", b"b", b"c"], False)
    assert store.read("s", 1, 0) == ([b"b", b"c"], False)
    assert store.read("s", 3, 0) == ([], False)
    assert store.append("s", [b"d", b"[DONE]"], final=True) == 5
    assert store.read("s", 3, 0) == ([b"d", b"[DONE]"], True)
    assert store.read("s", 5, 0) == ([], True)
    assert store.meta("s") == {"owner": "ann"}


def test_unknown_stream(store):
    assert store.read("nope", 0, 0.1) is None
    assert store.meta("nope") is None
    assert store.signal("nope", "cancelled") is False
    assert store.listeners("nope") == 0
    assert store.detach("nope") == 0


def test_a_waiting_reader_wakes_on_the_next_append(store):
    store.create("s", {})
    store.append("s", [b"a"])
    writer = threading.Timer(0.1, store.append, ("s", [b"b"]))
    writer.start()
    try:
        assert store.read("s", 1, 10) == ([b"b"], False)
    finally:
        writer.join()


def test_a_read_with_nothing_new_returns_empty_after_its_timeout(store):
    store.create("s", {})
    store.append("s", [b"a"])
    assert store.read("s", 1, 0.2) == ([], False)


def test_a_reader_behind_the_cap_gets_a_gap_error(store):
    store.create("s", {})
    for i in range(1, 401):  # Redis trims whole nodes of 100 entries (MAXLEN ~)
        store.append("s", [b"%d" % i])
    with pytest.raises(StreamGapError):
        store.read("s", 0, 0)
    assert store.read("s", 395, 0) == ([b"396", b"397", b"398", b"399", b"400"], False)


def test_listener_counts_never_go_below_zero(store):
    store.create("s", {})
    assert [store.attach("s"), store.attach("s"), store.detach("s")] == [1, 2, 1]
    assert [store.detach("s"), store.detach("s"), store.listeners("s")] == [0, 0, 0]


def test_signals_reach_the_watcher(store):
    store.create("s", {})
    handler = Signals()
    store.watch("s", handler)
    assert store.signal("s", "orphaned") is True
    assert store.signal("s", "cancelled") is True
    assert handler.wait_for(2) == ["orphaned", "cancelled"]


# -- Redis: shared by processes, expiring, failing cleanly ----------------------------


@pytest.mark.redis
def test_two_stores_share_logs_listeners_and_signals(make_redis_store):
    producer, other = make_redis_store(), make_redis_store()
    producer.create("s1", {"owner": "ann"})
    producer.append("s1", [b"a", b"b"])
    assert other.read("s1", 0, 0) == ([b"a", b"b"], False)
    assert other.meta("s1") == {"owner": "ann"}
    other.attach("s1")
    assert producer.listeners("s1") == 1

    first = Signals()
    producer.watch("s1", first)
    assert other.signal("s1", "cancelled") is True
    assert first.wait_for(1) == ["cancelled"]

    # Signals travel in order on one channel: once s2's arrived, s1's (unwatched) would have.
    producer.unwatch("s1")
    producer.create("s2", {})
    second = Signals()
    producer.watch("s2", second)
    other.signal("s1", "orphaned")
    other.signal("s2", "orphaned")
    assert second.wait_for(1) == ["orphaned"]
    assert first.got == ["cancelled"]


@pytest.mark.redis
def test_keys_live_a_lease_while_running_and_ttl_after_the_end(make_redis_store, redis_url):
    store = make_redis_store(f"{redis_url}?prefix=test:", ttl=30, lease=5)
    client = redis.Redis.from_url(redis_url)
    store.create("s", {})
    store.append("s", [b"a"])
    keys = ["test:{s}:log", "test:{s}:meta"]
    assert all(0 < client.pttl(key) <= 5000 for key in keys)
    store.append("s", [b"end"], final=True)
    assert all(5000 < client.pttl(key) <= 30000 for key in keys)
    client.close()


@pytest.mark.redis
def test_a_running_stream_outlives_its_lease_but_a_dead_producers_expires(make_redis_store):
    store = make_redis_store(lease=1.5)  # the listener refreshes every 0.5 s
    for stream_id in ("alive", "dead"):
        store.create(stream_id, {})
        store.append(stream_id, [b"a"])
    store.watch("alive", Signals())  # what a running producer does; "dead" has none
    wait_until(lambda: store.meta("dead") is None, what="the dead stream to expire")
    assert store.read("dead", 0, 0) is None
    assert store.read("alive", 0, 0) == ([b"a"], False)


@pytest.mark.redis
def test_a_finished_stream_expires_after_its_ttl(make_redis_store):
    store = make_redis_store(ttl=0.3)
    store.create("s", {})
    store.append("s", [b"a", b"[DONE]"], final=True)
    assert store.read("s", 0, 0) == ([b"a", b"[DONE]"], True)
    wait_until(lambda: store.read("s", 0, 0) is None, what="expiry")


@pytest.mark.redis
def test_the_listener_catches_up_on_a_cancel_it_missed_while_disconnected(
    make_redis_store, redis_url
):
    target = urlsplit(redis_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    try:
        producer = make_redis_store(f"{proxy.url}{target.path}")
        other = make_redis_store()
        producer.create("s", {})
        handler = Signals()
        producer.watch("s", handler)
        proxy.cut()  # the producer's process loses Redis...
        other.attach("s")  # (a reader is attached: no "orphaned" on recovery)
        assert other.signal("s", "cancelled") is True  # ...while the cancel is published
        proxy.restore()
        # At least once: redis-py's own reconnect and ours may each catch up.
        # 15 s: redis-py's reconnect backs off by seconds; the wait ends at the first signal.
        assert set(handler.wait_for(1, timeout=15)) == {"cancelled"}
    finally:
        proxy.close()


def test_redis_down_is_a_store_error_at_once():
    with refused_port() as port:
        store = RedisStore(f"redis://127.0.0.1:{port}/15")
        down_is_a_store_error(store)


def down_is_a_store_error(store: RedisStore) -> None:
    started = time.monotonic()
    for call in (
        lambda: store.create("s", {}),
        lambda: store.read("s", 0, 1),
        lambda: store.meta("s"),
        lambda: store.attach("s"),
        lambda: store.signal("s", "cancelled"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        assert isinstance(info.value.__cause__, redis.ConnectionError)
        assert info.value.to_dict()["error"]["type"] == "store_unavailable"
    # Five calls against a refused port fail in milliseconds; 5 s is far below what a retry
    # loop or a connect timeout would take, and far above a loaded machine's slowness.
    assert time.monotonic() - started < 5
    store.close()


@pytest.mark.redis
def test_a_black_hole_fails_waiting_reads_instead_of_hanging(make_redis_store, redis_url):
    target = urlsplit(redis_url)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 6379))
    try:
        store = make_redis_store(f"{proxy.url}{target.path}?socket_timeout=0.5")
        store.create("s", {})
        store.append("s", [b"a"])
        failures: list[BaseException] = []

        def follow() -> None:  # a live reader, blocked in XREAD when the network goes
            try:
                store.read("s", 1, 30)
            except BaseException as exc:
                failures.append(exc)

        reader = threading.Thread(target=follow)
        reader.start()
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(StoreError):
            store.read("s", 0, 0.2)
        reader.join(timeout=15)
        assert not reader.is_alive()
        assert [type(f) for f in failures] == [StoreError]
        # The socket timeout is 0.5 s and the read asked for 30 s: under 10 s proves the
        # timeout ended it, with room for a loaded machine.
        assert time.monotonic() - started < 10
    finally:
        proxy.close()


def test_bad_urls_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        RedisStore("redis://localhost:notaport/0")
    with pytest.raises(ConfigurationError, match="RESP2"):
        RedisStore("redis://localhost/0?protocol=3")


def test_without_the_redis_package_a_redis_url_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "flask_ai_sse.engine.redis_store")
    with pytest.raises(ConfigurationError, match=r"pip install 'flask-ai-sse\[redis\]'"):
        create_store("redis://localhost:6379/0", ttl=60, max_events=10)
