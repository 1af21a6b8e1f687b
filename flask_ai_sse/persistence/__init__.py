"""Conversations persisted with Flask-SQLAlchemy: ``AISSE(app, db=db)``.

::

    request --begin_turn--> user message + "streaming" answer (one short transaction)
                 |
    provider --chunks--> Generation --PersistObserver--> partial text, every N s / N chunks
                                             \\--> end state and meta: completed/failed/cancelled

    start-up / ``flask ai-sse reconcile``: "streaming" messages older than the
    stream timeout -> failed, reason "interrupted"

Every database write is its own short transaction: no session or connection
is held across a stream.
"""

from __future__ import annotations

from .history import HistoryBudget, approx_tokens, trim_history
from .models import STATUSES, ConversationMixin, MessageMixin, Models, define_models
from .observer import MESSAGE_META_OPTION, PersistObserver, Turn, begin_turn
from .state import Persistence
from .store import CURRENT_OWNER, ConversationStore, Database, MessageStream, PersistSettings

__all__ = [
    "CURRENT_OWNER",
    "MESSAGE_META_OPTION",
    "STATUSES",
    "ConversationMixin",
    "ConversationStore",
    "Database",
    "HistoryBudget",
    "MessageMixin",
    "MessageStream",
    "Models",
    "PersistObserver",
    "PersistSettings",
    "Persistence",
    "Turn",
    "approx_tokens",
    "begin_turn",
    "define_models",
    "trim_history",
]
