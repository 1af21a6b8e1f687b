"""Fixtures of the engine tests: a Redis server of the test's own, stored conversations."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..helpers import require_postgres
from .redis_server import RedisServer


@pytest.fixture
def stored_database() -> Iterator[dict[str, str]]:
    """PostgreSQL settings whose conversation tables (a prefix of this test's own) are
    created before the test and dropped after it."""
    from tests.apps.persist_app import create_app

    database = {
        "SQLALCHEMY_DATABASE_URI": require_postgres(),
        "AI_SSE_TABLE_PREFIX": f"t{secrets.token_hex(4)}_",
    }
    app = create_app(database)
    db = app.extensions["test_db"]
    with app.app_context():
        db.create_all()
    yield database
    with app.app_context():
        db.drop_all()
        db.engine.dispose()


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
