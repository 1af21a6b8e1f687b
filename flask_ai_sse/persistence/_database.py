"""Short transactions on one app's database, from any thread or greenlet.

Under gunicorn's gevent worker hundreds of streams share one connection pool,
so nothing keeps a session or a connection between calls: each transaction
takes a fresh session from the app's own session factory (never the
request-scoped ``db.session``, whose pending changes belong to the app),
commits and gives the connection back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Session


class Database:
    """Short transactions on one app's database, from any thread or greenlet."""

    def __init__(self, app: Flask, db: SQLAlchemy, *, sqlite_wal: bool = True) -> None:
        self.app = app
        self.db = db
        self._tune_sqlite = sqlite_wal
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A fresh session in a transaction, committed on exit and closed either way.

        The producer greenlet has no app context, and Flask-SQLAlchemy finds its
        engine through ``current_app``, so one is pushed when missing.
        """
        with self._app_context():
            if self._tune_sqlite:
                self._use_wal()
            session = self.db.session.session_factory(expire_on_commit=False)
            with session, session.begin():
                yield session

    def _use_wal(self) -> None:
        """Put a SQLite file in WAL mode with ``synchronous=NORMAL``, once.

        In its default mode every commit fsyncs (milliseconds each), and SQLite
        blocks the whole gevent worker while it does: hundreds of streams writing
        partial text would stall every other one. Engines already pooling
        connections are disposed, so that every connection gets the pragmas.
        """
        with self._lock:
            if not self._tune_sqlite:
                return
            self._tune_sqlite = False
            engine = self.db.engine
            if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
                return
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            engine.dispose()

    @contextmanager
    def _app_context(self) -> Iterator[None]:
        if has_app_context() and current_app._get_current_object() is self.app:  # type: ignore[attr-defined]
            yield
        else:
            with self.app.app_context():
                yield


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
