"""Databases for the persistence tests: a SQLite file, and PostgreSQL for real.

Each module gets fresh tables under a unique prefix (dropped afterwards), so
runs sharing one PostgreSQL database never collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from ..apps.persist_app import create_app
from ..helpers import require_postgres


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """App config naming a database whose tables exist: ``SQLALCHEMY_DATABASE_URI`` and prefix."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'conversations.db'}"
    else:
        url = require_postgres()
    config = {"SQLALCHEMY_DATABASE_URI": url, "AI_SSE_TABLE_PREFIX": f"t{secrets.token_hex(4)}_"}
    app = create_app(config)
    db = app.extensions["test_db"]
    with app.app_context():
        db.create_all()
    yield config
    with app.app_context():
        db.drop_all()
        db.engine.dispose()
