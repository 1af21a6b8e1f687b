"""``redis+sentinel://`` against a real Sentinel on loopback: a master, a replica and one
Sentinel started by the test; a stream survives a failover within the outage budget.

The failover is a stalled master (SIGSTOP), as when a host freezes: a forced
``SENTINEL FAILOVER`` with a healthy old master leaves two masters for a moment,
and redis-py keeps writing to the old one until it is made a replica (writes of
that moment are lost: Redis replication is asynchronous)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from flask_ai_sse.engine.redis_store import RedisStore
from flask_ai_sse.errors import ConfigurationError

from ..helpers import free_port, wait_for_port, wait_until
from .redis_server import REDIS_SERVER, RedisServer
from .test_store_faults import TEMPLATE, config, exactly_one_end, start_stream

pytestmark = [pytest.mark.server, pytest.mark.redis]


class Sentinel:
    """One ``redis-server --sentinel`` watching ``master`` as ``mymaster``."""

    def __init__(self, workdir: Path, master: RedisServer) -> None:
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
        )
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, proc=self.proc)
        self.client = redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)

    def url(self, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/mymaster/{db}"

    def master_port(self) -> int:
        address = self.client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(address[1])

    def replicas(self) -> list[Any]:
        return list(self.client.execute_command("SENTINEL", "replicas", "mymaster"))

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def sentinel_set(own_redis, tmp_path):
    master = own_redis()
    replica = own_redis(extra=["--replicaof", "127.0.0.1", str(master.port)])

    def synced() -> bool:
        with replica.client(decode_responses=True) as client:
            return client.info("replication").get("master_link_status") == "up"

    wait_until(synced, what="the replica to sync")
    sentinel = Sentinel(tmp_path / "sentinel", master)
    try:
        wait_until(sentinel.replicas, timeout=20, what="the Sentinel to find the replica")
        yield master, replica, sentinel
    finally:
        sentinel.close()


def test_the_store_reaches_the_master_through_the_sentinel(sentinel_set):
    master, _, sentinel = sentinel_set
    store = RedisStore(sentinel.url(), ttl=60)
    try:
        store.create("s", {"owner": None})
        store.append("s", [b"a"])
        assert store.read("s", 0, 0) == ([b"a"], False)
        with master.client() as client:
            assert client.exists("ai_sse:{s}:meta")
    finally:
        store.close()


def test_a_stream_rides_out_a_failover(gunicorn_server, sentinel_set):
    """The master stalls; the Sentinel promotes the replica; the store follows it."""
    master, replica, sentinel = sentinel_set
    server = gunicorn_server(config(sentinel.url(), AI_SSE_STORE_OUTAGE_BUDGET=10))
    timed, stream_id = start_stream(server)
    master.pause()
    try:
        wait_until(lambda: sentinel.master_port() == replica.port, timeout=20, what="failover")
        result = timed.result(timeout=60)
    finally:
        master.resume()
    exactly_one_end(result, stream_id)
    assert result.terminal is not None and result.terminal.event == "done"
    assert result.text == TEMPLATE
    with replica.client() as client:  # the new master holds the whole log
        assert client.hget(f"ai_sse:{{{stream_id}}}:meta", "end") is not None


def test_a_sentinel_url_without_a_service_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        RedisStore("redis+sentinel://127.0.0.1:26379")
