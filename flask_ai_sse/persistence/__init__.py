"""Conversations persisted with Flask-SQLAlchemy: ``AISSE(app, db=db)``.

::

    request --begin_turn--> user message + "streaming" answer (one short transaction)
                 |
    provider --chunks--> Generation --PersistObserver--> partial text, every N s / N chunks
                                             \\--> end state and meta: completed/failed/cancelled

    start-up / ``flask ai-sse reconcile``: "streaming" messages older than the
    stream timeout -> failed, reason "interrupted"

This package is optional: the extension loads it only when given a ``db``,
and plugs it in through the conversations hook of :mod:`flask_ai_sse._turn`.
Every database write is its own short transaction: no session or connection
is held across a stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from .._settings import PersistenceSettings
from .._validation import Limits
from ._database import Database
from .cli import register_cli
from .conversations import CURRENT_OWNER, ConversationStore
from .history import HistoryBudget, approx_tokens, trim_history
from .messages import MessageStream
from .models import STATUSES, ConversationMixin, MessageMixin, Models, define_models
from .routes import Route, add_conversation_routes
from .turns import PersistObserver

__all__ = [
    "CURRENT_OWNER",
    "STATUSES",
    "ConversationMixin",
    "ConversationStore",
    "HistoryBudget",
    "MessageMixin",
    "MessageStream",
    "Models",
    "PersistObserver",
    "Persistence",
    "approx_tokens",
    "define_models",
    "trim_history",
]

logger = logging.getLogger("flask_ai_sse")


class Persistence:
    """One extension's persistence: its models, and per app a :class:`ConversationStore`."""

    def __init__(self, db: Any, table_prefix: str) -> None:
        self.db = db
        self.models = define_models(db, table_prefix)

    def init_app(
        self,
        app: Flask,
        settings: PersistenceSettings,
        *,
        owner: Callable[[], str | None],
    ) -> ConversationStore:
        """The app's store (also the extension's conversations hook); reconcile, CLI."""
        store = ConversationStore(
            Database(app, self.db, sqlite_wal=settings.sqlite_wal),
            define_models(self.db, settings.table_prefix),
            settings,
            owner,
        )
        if settings.reconcile_on_start:
            app.before_request(_ReconcileOnce(store))
        register_cli(app)
        return store

    def add_routes(
        self,
        route: Route,
        *,
        store: Callable[[], ConversationStore],
        owner: Callable[[], str | None],
        limits: Callable[[], Limits],
    ) -> None:
        """The conversation routes, for the extension's blueprint."""
        add_conversation_routes(route, store=store, owner=owner, limits=limits)


class _ReconcileOnce:
    """Reconcile before the first request: by then the app has set its database up."""

    def __init__(self, store: ConversationStore) -> None:
        self.store: ConversationStore | None = store

    def __call__(self) -> None:
        store, self.store = self.store, None
        if store is None:
            return
        try:
            store.reconcile()
        except Exception:
            logger.exception("reconciling interrupted messages failed (are the tables created?)")
