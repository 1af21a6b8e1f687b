"""Conversations and messages in the database: every call is one short transaction.

Under gunicorn's gevent worker hundreds of streams share one connection pool,
so nothing here keeps a session or a connection between calls: each write
takes a fresh session from the app's own session factory (never the
request-scoped ``db.session``, whose pending changes belong to the app),
commits and gives the connection back. A :class:`MessageStream` writes its
partial text in such transactions at an interval, by time and by chunks.
"""

from __future__ import annotations

import builtins
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from flask import Flask, current_app, has_app_context

from ..chunks import Message as ChatMessage
from ..errors import AISSEError, NotFound, ValidationError
from .history import HistoryBudget, trim_history
from .models import ConversationMixin, MessageMixin, Models, utcnow

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy
    from sqlalchemy.orm import Session

logger = logging.getLogger("flask_ai_sse")

ROLES = ("system", "user", "assistant")
TITLE_CHARS = 80
#: How old a ``streaming`` message must be to count as interrupted when the
#: stream timeout is off (0): no live stream goes a day without a write.
UNBOUNDED_RECONCILE_AFTER = 86_400.0


class _Owner(enum.Enum):
    CURRENT = "current"


#: The default ``owner`` of the store's methods: whoever ``@ai.authorize`` says asks.
CURRENT_OWNER = _Owner.CURRENT
OwnerArg = str | None | _Owner


@dataclass(frozen=True)
class PersistSettings:
    """How often partial text is written, how much history goes upstream, reconciliation."""

    interval: float = 1.0
    every: int = 20
    budget: HistoryBudget = field(default_factory=HistoryBudget)
    #: Seconds after its last write that a ``streaming`` message counts as interrupted.
    reconcile_after: float = 600.0


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


def _title(messages: Sequence[ChatMessage]) -> str | None:
    """A conversation's default title: the start of its first user message."""
    text = next((m["content"] for m in messages if m["role"] == "user"), "")
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def error_meta(error: BaseException) -> dict[str, Any]:
    """An error as stored in ``meta``: the library's public type and message, nothing internal."""
    if not isinstance(error, AISSEError):
        error = AISSEError()
    return cast(dict[str, Any], error.to_dict()["error"])


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
        settings: PersistSettings,
        current_owner: Callable[[], str | None],
    ) -> None:
        self.database = database
        self.models = models
        self.settings = settings
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
            query = sa.select(M).where(M.conversation_id == conversation_id).order_by(M.id)
            return list(session.scalars(query))

    def conversation_with_messages(
        self, conversation_id: str, *, owner: OwnerArg = CURRENT_OWNER
    ) -> tuple[ConversationMixin, builtins.list[MessageMixin]]:
        """A conversation and its messages, read in one transaction (a consistent view)."""
        M = self.Message
        with self.database.transaction() as session:
            conversation = self._get(session, conversation_id, self._owner(owner))
            query = sa.select(M).where(M.conversation_id == conversation_id).order_by(M.id)
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
                session.add(self._message(conversation_id, message["role"], message["content"]))
            answer = self._message(conversation_id, role, "", "streaming", meta)
            session.add(answer)
            if conversation.title is None:
                conversation.title = _title(new)
            conversation.updated_at = answer.created_at
            session.flush()
        stream = MessageStream(self, answer.id, conversation_id, answer.meta)
        return stream, trim_history(earlier, new, self.settings.budget)

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
        return trim_history(earlier, new, self.settings.budget)

    def _history(self, session: Session, conversation_id: str) -> builtins.list[ChatMessage]:
        """Earlier messages worth sending: ended, not empty; all system ones, the newest others."""
        M = self.Message
        usable = sa.select(M.role, M.content).where(
            M.conversation_id == conversation_id, M.status != "streaming", M.content != ""
        )
        system = session.execute(usable.where(M.role == "system").order_by(M.id)).all()
        others = usable.where(M.role != "system").order_by(M.id.desc())
        if self.settings.budget.max_messages:
            others = others.limit(self.settings.budget.max_messages)
        rows = [*system, *reversed(session.execute(others).all())]
        return [cast(ChatMessage, {"role": role, "content": content}) for role, content in rows]

    # -- writes of a streaming message ----------------------------------------------

    def _write_partial(self, message_id: int, content: str) -> bool:
        M = self.Message
        with self.database.transaction() as session:
            result = session.execute(
                sa.update(M)
                .where(M.id == message_id, M.status == "streaming")
                .values(content=content, updated_at=utcnow())
            )
        return bool(cast("sa.CursorResult[Any]", result).rowcount)

    def _write_end(
        self, message_id: int, conversation_id: str, status: str, content: str, meta: dict[str, Any]
    ) -> bool:
        M, C = self.Message, self.Conversation
        now = utcnow()
        with self.database.transaction() as session:
            result = session.execute(
                sa.update(M)
                .where(M.id == message_id, M.status == "streaming")
                .values(status=status, content=content, meta=meta, updated_at=now)
            )
            session.execute(sa.update(C).where(C.id == conversation_id).values(updated_at=now))
        return bool(cast("sa.CursorResult[Any]", result).rowcount)

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


class MessageStream:
    """A message written piece by piece: :meth:`append`, then :meth:`complete`,
    :meth:`fail` or :meth:`cancel`.

    The partial text is written every ``AI_SSE_PERSIST_INTERVAL`` seconds or
    ``AI_SSE_PERSIST_EVERY`` appends, whichever comes first, each in its own
    short transaction. As a context manager it completes on a normal exit and
    fails on an exception.
    """

    def __init__(
        self,
        store: ConversationStore,
        message_id: int,
        conversation_id: str,
        meta: Mapping[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.id = message_id
        self.conversation_id = conversation_id
        self.meta: dict[str, Any] = dict(meta or {})
        self.status = "streaming"
        self.interval = store.settings.interval
        self.every = store.settings.every
        self._clock = clock
        self._parts: list[str] = []
        self._chunks = 0
        self._written_chunks = 0
        self._started = clock()
        self._first: float | None = None
        self._last_write = self._started

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, text: str, *, flush: bool = True) -> None:
        """Add text; write the partial text when the interval or chunk count says so.

        ``flush=False`` only buffers it (the end write will store it).
        """
        if self.status != "streaming":
            raise RuntimeError(f"message {self.id} already ended ({self.status})")
        if not text:
            return
        now = self._clock()
        self._parts.append(text)
        self._chunks += 1
        if self._first is None:
            self._first = now
        if flush and (
            (self.every and self._chunks - self._written_chunks >= self.every)
            or (self.interval and now - self._last_write >= self.interval)
        ):
            self.flush()

    def flush(self) -> None:
        """Write the partial text now (when there is anything new)."""
        if self._chunks == self._written_chunks or self.status != "streaming":
            return
        # Counted before the write: a failing database is retried at the next
        # interval, not on every chunk of the stream.
        self._last_write = self._clock()
        self._written_chunks = self._chunks
        self.store._write_partial(self.id, self.text)

    def stats(self) -> dict[str, Any]:
        """The stream figures of ``meta``, as measured by this object."""
        now = self._clock()
        return {
            "stream_chunks": self._chunks,
            "stream_duration": round(now - self._started, 4),
            "time_to_first_token": (
                round(self._first - self._started, 4) if self._first is not None else None
            ),
        }

    def complete(self, *, meta: Mapping[str, Any] | None = None) -> bool:
        """End as ``completed``; ``meta`` adds to (or overrides) the stored metadata."""
        return self._end("completed", {"finish_reason": "stop", **(meta or {})})

    def fail(
        self,
        reason: str = "error",
        *,
        error: BaseException | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> bool:
        """End as ``failed`` keeping the partial text; ``reason`` and the error go in ``meta``."""
        extra: dict[str, Any] = {"finish_reason": "error", "reason": reason}
        if error is not None:
            extra["error"] = error_meta(error)
        return self._end("failed", {**extra, **(meta or {})})

    def cancel(self, reason: str = "cancelled", *, meta: Mapping[str, Any] | None = None) -> bool:
        """End as ``cancelled`` (stopped by the user, or nobody listened) keeping the text."""
        return self._end(
            "cancelled", {"finish_reason": "cancelled", "reason": reason, **(meta or {})}
        )

    def _end(self, status: str, extra: dict[str, Any]) -> bool:
        """Write the end state once; False when it had ended already (here or reconciled)."""
        if self.status != "streaming":
            return False
        self.status = status
        base = {"model": None, "provider": None, "finish_reason": None, "usage": None}
        self.meta = {**base, **self.stats(), **self.meta, **extra}
        return self.store._write_end(self.id, self.conversation_id, status, self.text, self.meta)

    def __enter__(self) -> MessageStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.complete()
        elif isinstance(exc, GeneratorExit | KeyboardInterrupt):
            self.cancel()
        else:
            self.fail(error=exc)
