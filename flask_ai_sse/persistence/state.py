"""One app's persistence: settings from config, the store, start-up reconciliation, CLI."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

from .. import constants as C
from .cli import register_cli
from .history import HistoryBudget
from .models import Models, define_models
from .store import UNBOUNDED_RECONCILE_AFTER, ConversationStore, Database, PersistSettings

if TYPE_CHECKING:
    from ..extension import AISSE

logger = logging.getLogger("flask_ai_sse")


def define_app_models(db: Any, table_prefix: str | None, app: Flask | None) -> Models:
    """The models of ``AISSE(app, db=db, table_prefix=...)``: argument > app config > default.

    Made when the extension is created, so that ``db.create_all()`` and Alembic
    see them even before ``init_app``.
    """
    prefix = table_prefix or (app.config.get(C.TABLE_PREFIX) if app is not None else None)
    return define_models(db, prefix or C.DEFAULTS[C.TABLE_PREFIX])


def settings_from_config(config: Mapping[str, Any]) -> PersistSettings:
    timeout = float(config[C.STREAM_TIMEOUT])
    return PersistSettings(
        interval=float(config[C.PERSIST_INTERVAL]),
        every=int(config[C.PERSIST_EVERY]),
        budget=HistoryBudget(
            max_messages=int(config[C.HISTORY_MAX_MESSAGES]),
            max_chars=int(config[C.HISTORY_MAX_CHARS]),
            max_tokens=int(config[C.HISTORY_MAX_TOKENS]),
        ),
        reconcile_after=timeout if timeout > 0 else UNBOUNDED_RECONCILE_AFTER,
    )


class Persistence:
    """What ``AppState.persistence`` holds when ``AISSE`` was given a ``db``."""

    def __init__(self, app: Flask, ai: AISSE, config: Mapping[str, Any]) -> None:
        models = define_models(ai.db, config[C.TABLE_PREFIX])
        self.store = ConversationStore(
            Database(app, ai.db, sqlite_wal=bool(config[C.SQLITE_WAL])),
            models,
            settings_from_config(config),
            ai.current_owner,
        )
        self._reconciled = not config[C.RECONCILE_ON_START]
        if not self._reconciled:
            app.before_request(self._reconcile_once)
        register_cli(app)

    def _reconcile_once(self) -> None:
        """Reconcile before the first request: by then the app has set its database up."""
        if self._reconciled:
            return
        self._reconciled = True
        try:
            self.store.reconcile()
        except Exception:
            logger.exception("reconciling interrupted messages failed (are the tables created?)")
