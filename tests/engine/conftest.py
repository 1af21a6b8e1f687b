"""Fixtures of the engine tests: a Redis server of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .redis_server import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``own_redis()`` starts a redis-server on a free port; it is resumed and stopped
    at the end of the test whatever happened (never the shared server)."""
    servers: list[RedisServer] = []

    def start(**options: object) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", **options)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
