"""Conversations and messages in the database: every call is one short transaction
(see :mod:`._database`); a streaming answer is written by a :class:`MessageStream`."""

from __future__ import annotations

import builtins
import dataclasses
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from .._settings import PersistenceSettings
from .._turn import Turn
from ..chunks import ChatRequest, text_of
from ..chunks import Message as ChatMessage
from ..engine import Engine
from ..errors import NotFound, ValidationError
from ._database import Database
from .history import HistoryBudget, trim_history
from .messages import MessageStream, MessageWriter
from .models import ConversationMixin, MessageMixin, Models, message_order, utcnow
from .replay import message_meta, replay
from .turns import StoredTurn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

logger = logging.getLogger("flask_ai_sse")

ROLES = ("system", "user", "assistant", "tool")
TITLE_CHARS = 80


class _Owner(enum.Enum):
    CURRENT = "current"


#: The default ``owner`` of the store's methods: whoever ``@ai.authorize`` says asks.
CURRENT_OWNER = _Owner.CURRENT
OwnerArg = str | None | _Owner


def _title(messages: Sequence[ChatMessage]) -> str | None:
    """A conversation's default title: the start of its first user message."""
    text = next((text_of(m["content"]) for m in messages if m["role"] == "user"), "")
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class ConversationStore:
    """Conversations and messages of one app, each call its own short transaction.

    ``owner`` defaults to the current request's (``@ai.authorize``); a
    conversation of another owner is a :class:`~flask_ai_sse.errors.NotFound`,
    exactly like one that does not exist.
    """

    def __init__(
        self,
        database: Database,
        models: Models,
        settings: PersistenceSettings,
        current_owner: Callable[[], str | None],
    ) -> None:
        self.database = database
        self.models = models
        self.settings = settings
        self.budget = HistoryBudget(
            max_messages=settings.history_max_messages,
            max_chars=settings.history_max_chars,
            max_tokens=settings.history_max_tokens,
        )
        self._writer = MessageWriter(database, models)
        self._current_owner = current_owner

    @property
    def Conversation(self) -> type[ConversationMixin]:
        return self.models.conversation

    @property
    def Message(self) -> type[MessageMixin]:
        return self.models.message

    def _owner(self, owner: OwnerArg) -> str | None:
        return self._current_owner() if owner is CURRENT_OWNER else owner

    def _get(self, session: Session, conversation_id: str, owner: str | None) -> ConversationMixin:
        conversation = session.get(self.Conversation, conversation_id)
        if conversation is None or conversation.owner != owner:
            raise NotFound("Unknown conversation.")
        return conversation

    # -- conversations ------------------------------------------------------------

    def create(
        self,
        *,
        title: str | None = None,
        system: str | None = None,
        owner: OwnerArg = CURRENT_OWNER,
    ) -> ConversationMixin:
        """A new conversation; ``system`` is stored as its first message (the system prompt)."""
        with self.database.transaction() as session:
            conversation = self.Conversation(owner=self._owner(owner), title=title)
            session.add(conversation)
            session.flush()
            if system:
                session.add(self._message(conversation.id, "system", system))
        return conversation

    def get(self, conversation_id: str, *, owner: OwnerArg = CURRENT_OWNER) -> ConversationMixin:
        with self.database.transaction() as session:
            return self._get(session, conversation_id, self._owner(owner))

    def list(
        self, *, owner: OwnerArg = CURRENT_OWNER, limit: int = 50, offset: int = 0
    ) -> builtins.list[ConversationMixin]:
        """The owner's conversations, the most recently active first."""
        C = self.Conversation
        query = (
            sa.select(C)
            .where(C.owner == self._owner(owner))
            .order_by(C.updated_at.desc(), C.id)
            .limit(limit)
            .offset(offset)
        )
        with self.database.transaction() as session:
            return list(session.scalars(query))

    def rename(
        self, conversation_id: str, title: str | None, *, owner: OwnerArg = CURRENT_OWNER
    ) -> ConversationMixin:
        with self.database.transaction() as session:
            conversation = self._get(session, conversation_id, self._owner(owner))
            conversation.title = title
            conversation.updated_at = utcnow()
        return conversation

    def delete(self, conversation_id: str, *, owner: OwnerArg = CURRENT_OWNER) -> None:
        """Delete a conversation and its messages (explicitly: SQLite ignores ``ON DELETE``)."""
        M, C = self.Message, self.Conversation
        with self.database.transaction() as session:
            self._get(session, conversation_id, self._owner(owner))
            session.execute(sa.delete(M).where(M.conversation_id == conversation_id))
            session.execute(sa.delete(C).where(C.id == conversation_id))

    # -- messages -----------------------------------------------------------------

    def messages(
        self, conversation_id: str, *, owner: OwnerArg = CURRENT_OWNER
    ) -> builtins.list[MessageMixin]:
        """All messages of a conversation, oldest first."""
        M = self.Message
        with self.database.transaction() as session:
            self._get(session, conversation_id, self._owner(owner))
            query = sa.select(M).where(M.conversation_id == conversation_id)
            query = query.order_by(*message_order(M))
            return list(session.scalars(query))

    def conversation_with_messages(
        self, conversation_id: str, *, owner: OwnerArg = CURRENT_OWNER
    ) -> tuple[ConversationMixin, builtins.list[MessageMixin]]:
        """A conversation and its messages, read in one transaction (a consistent view)."""
        M = self.Message
        with self.database.transaction() as session:
            conversation = self._get(session, conversation_id, self._owner(owner))
            query = sa.select(M).where(M.conversation_id == conversation_id)
            query = query.order_by(*message_order(M))
            return conversation, list(session.scalars(query))

    def _message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        status: str = "completed",
        meta: Mapping[str, Any] | None = None,
    ) -> MessageMixin:
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}.", type="invalid_role")
        now = utcnow()
        return self.Message(
            conversation_id=conversation_id,
            role=role,
            content=content,
            status=status,
            meta=dict(meta or {}),
            created_at=now,
            updated_at=now,
        )

    def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        meta: Mapping[str, Any] | None = None,
        owner: OwnerArg = CURRENT_OWNER,
    ) -> MessageMixin:
        """Store a whole (``completed``) message."""
        with self.database.transaction() as session:
            conversation = self._get(session, conversation_id, self._owner(owner))
            message = self._message(conversation_id, role, content, meta=meta)
            session.add(message)
            conversation.updated_at = message.created_at
        return message

    def start_message(
        self,
        conversation_id: str,
        *,
        role: str = "assistant",
        meta: Mapping[str, Any] | None = None,
        owner: OwnerArg = CURRENT_OWNER,
    ) -> MessageStream:
        """Create a ``streaming`` message; append to it, then complete, fail or cancel it."""
        return self._open(conversation_id, (), role, meta, self._owner(owner), history=False)[0]

    def start_turn(
        self,
        conversation_id: str,
        new: Sequence[ChatMessage],
        *,
        role: str = "assistant",
        meta: Mapping[str, Any] | None = None,
        owner: OwnerArg = CURRENT_OWNER,
    ) -> tuple[MessageStream, builtins.list[ChatMessage]]:
        """Store ``new`` (the user's turn) and a ``streaming`` answer, in one transaction.

        Returns the answer's stream and the context to send upstream: the
        earlier messages within the history budget, then ``new``.
        """
        return self._open(conversation_id, new, role, meta, self._owner(owner), history=True)

    def _open(
        self,
        conversation_id: str,
        new: Sequence[ChatMessage],
        role: str,
        meta: Mapping[str, Any] | None,
        owner: str | None,
        *,
        history: bool,
    ) -> tuple[MessageStream, builtins.list[ChatMessage]]:
        with self.database.transaction() as session:
            conversation = self._get(session, conversation_id, owner)
            earlier = self._history(session, conversation_id) if history else []
            for message in new:
                text = text_of(message["content"])
                extra = message_meta(message) or None
                session.add(self._message(conversation_id, message["role"], text, meta=extra))
            answer = self._message(conversation_id, role, "", "streaming", meta)
            session.add(answer)
            if conversation.title is None:
                conversation.title = _title(new)
            conversation.updated_at = answer.created_at
            session.flush()
        stream = MessageStream(
            self._writer,
            answer.id,
            conversation_id,
            answer.meta,
            interval=self.settings.interval,
            every=self.settings.every,
        )
        return stream, trim_history(earlier, new, self.budget)

    def history(
        self,
        conversation_id: str,
        new: Sequence[ChatMessage] = (),
        *,
        owner: OwnerArg = CURRENT_OWNER,
    ) -> builtins.list[ChatMessage]:
        """What a stream with this conversation sends upstream: trimmed history, then ``new``."""
        with self.database.transaction() as session:
            self._get(session, conversation_id, self._owner(owner))
            earlier = self._history(session, conversation_id)
        return trim_history(earlier, new, self.budget)

    def _history(self, session: Session, conversation_id: str) -> builtins.list[ChatMessage]:
        """Earlier messages worth sending: ended, not empty; all system ones, the newest others."""
        M = self.Message
        usable = sa.select(M.role, M.content, M.meta).where(
            M.conversation_id == conversation_id, M.status != "streaming"
        )
        system = session.execute(usable.where(M.role == "system").order_by(M.id)).all()
        others = usable.where(M.role != "system").order_by(*message_order(M, descending=True))
        if self.budget.max_messages:
            others = others.limit(self.budget.max_messages)
        rows = [*system, *reversed(session.execute(others).all())]
        # Tool calls, call ids and parts live in meta (see .replay).
        return [m for role, content, meta in rows for m in replay(role, content, meta)]

    def begin_turn(
        self,
        request: ChatRequest,
        *,
        owner: str | None,
        provider: str,
        meta: Mapping[str, Any],
    ) -> Turn:
        """Store a turn of ``request.conversation_id`` before the upstream call.

        The user's new messages and a ``streaming`` answer are stored in one
        transaction (the owner checked); the request going upstream carries the
        conversation's history, and the turn's observer writes the answer.
        """
        assert request.conversation_id is not None
        stream_id = Engine.new_stream_id()
        message, context = self.start_turn(
            request.conversation_id,
            request.messages,
            meta={**meta, "stream_id": stream_id, "model": request.model, "provider": provider},
            owner=owner,
        )
        return StoredTurn(
            dataclasses.replace(request, messages=context), message, stream_id=stream_id
        )

    # -- crash safety -------------------------------------------------------------

    def reconcile(
        self,
        *,
        older_than: float | None = None,
        alive: Callable[[str], bool | None] | None = None,
    ) -> int:
        """Mark ``streaming`` messages not written for ``older_than`` seconds as interrupted.

        A worker killed mid-answer leaves its message ``streaming``; no live
        stream goes longer than the stream timeout (the default age) without
        ending. With ``alive`` (a shared store's heartbeat check: ``True`` the
        producer beats, ``False`` it stopped, ``None`` unknown stream), a message
        whose producer stopped is marked whatever its age, and one whose producer
        beats is kept; the age decides only for unknown streams. They become
        ``failed`` with ``meta.reason == "interrupted"``; their partial text stays.
        Returns how many were marked.
        """
        age = self.settings.reconcile_after if older_than is None else older_than
        M = self.Message
        now = utcnow()
        rows = sa.select(M.id, M.meta, M.updated_at).where(M.status == "streaming")
        count = 0
        with self.database.transaction() as session:
            for message_id, meta, updated_at in session.execute(rows).all():
                verdict = _producer_alive(alive, (meta or {}).get("stream_id"))
                old = _aware(updated_at) <= now - timedelta(seconds=age)
                if verdict is False or (verdict is None and old):
                    count += _mark_interrupted(session, M, message_id, meta, now)
        if count:
            logger.warning("marked %d interrupted streaming message(s) as failed", count)
        return count

    def mark_interrupted(self, stream_id: str) -> int:
        """Mark the ``streaming`` message of ``stream_id`` (its producer was lost) failed."""
        M = self.Message
        now = utcnow()
        rows = sa.select(M.id, M.meta).where(M.status == "streaming")
        count = 0
        with self.database.transaction() as session:
            for message_id, meta in session.execute(rows).all():
                if (meta or {}).get("stream_id") == stream_id:
                    count += _mark_interrupted(session, M, message_id, meta, now)
        return count


def _aware(value: datetime) -> datetime:
    """A naive timestamp (SQLite drops the zone) read as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _producer_alive(alive: Callable[[str], bool | None] | None, stream_id: Any) -> bool | None:
    if alive is None or not isinstance(stream_id, str):
        return None
    try:
        return alive(stream_id)
    except Exception:  # the store is down: fall back to the age
        logger.warning("could not ask the stream store about %s", stream_id, exc_info=True)
        return None


def _mark_interrupted(session: Session, M: Any, message_id: Any, meta: Any, now: datetime) -> int:
    meta = {
        **(meta or {}),
        "finish_reason": "error",
        "reason": "interrupted",
        "error": {
            "type": "interrupted",
            "message": "The server stopped while this answer was streaming.",
        },
    }
    result = session.execute(
        sa.update(M)
        .where(M.id == message_id, M.status == "streaming")
        .values(status="failed", meta=meta, updated_at=now)
    )
    return int(cast("sa.CursorResult[Any]", result).rowcount)
