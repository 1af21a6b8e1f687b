"""``Conversation`` and ``Message``, defined in the app's own Flask-SQLAlchemy metadata.

They subclass the app's ``db.Model``, so ``db.create_all()``, Alembic /
Flask-Migrate autogenerate and ``db.session`` treat them like the app's own
models. The columns live on two typed mixins, which the library's own code
queries against; the concrete classes are made once per ``db``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from ..errors import ConfigurationError

#: A message's life: ``streaming`` until it ends in one of the other three.
STATUSES = ("streaming", "completed", "failed", "cancelled")

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONColumn = sa.JSON().with_variant(JSONB(), "postgresql")
#: BIGINT ids, but SQLite only autoincrements an ``INTEGER PRIMARY KEY``.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which are UTC here."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def new_conversation_id() -> str:
    """Unguessable (128 random bits): ids are handed to browsers."""
    return secrets.token_urlsafe(16)


class ConversationMixin:
    """The columns of a conversation. ``owner`` is the ``@ai.authorize`` key (None: anonymous)."""

    __ai_sse_prefix__: ClassVar[str]

    if TYPE_CHECKING:  # the declarative base provides it

        def __init__(self, **kwargs: Any) -> None: ...

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True, default=new_conversation_id)
    owner: Mapped[str | None] = mapped_column(sa.String(255))
    title: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = f"{cls.__ai_sse_prefix__}conversations"
        return (sa.Index(f"ix_{table}_owner_updated", "owner", "updated_at"),)

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the routes. The owner key stays out: it may be a session id."""
        return {
            "id": self.id,
            "title": self.title,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }

    def __repr__(self) -> str:
        return f"<Conversation {self.id!r} title={self.title!r}>"


class MessageMixin:
    """The columns of a message; ``meta`` holds stream figures and the app's own metadata."""

    __ai_sse_prefix__: ClassVar[str]

    if TYPE_CHECKING:

        def __init__(self, **kwargs: Any) -> None: ...

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    content: Mapped[str] = mapped_column(sa.Text, default="")
    status: Mapped[str] = mapped_column(sa.String(16), default="completed")
    meta: Mapped[dict[str, Any]] = mapped_column(JSONColumn, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    @declared_attr
    def conversation_id(cls) -> Mapped[str]:
        return mapped_column(
            sa.String(64),
            sa.ForeignKey(f"{cls.__ai_sse_prefix__}conversations.id", ondelete="CASCADE"),
            nullable=False,
        )

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = f"{cls.__ai_sse_prefix__}messages"
        return (
            # history of one conversation, in order
            sa.Index(f"ix_{table}_conversation", "conversation_id", "id"),
            # crash reconciliation: streaming messages by age
            sa.Index(f"ix_{table}_status_updated", "status", "updated_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "meta": self.meta,
            "created_at": isoformat(self.created_at),
            "updated_at": isoformat(self.updated_at),
        }

    def __repr__(self) -> str:
        return f"<Message {self.id!r} {self.role} {self.status}>"


def message_order(M: type[MessageMixin], *, descending: bool = False) -> list[Any]:
    """A conversation's messages in reading order.

    By id, except that the rows of a stream's tool steps (``meta.answer_id``: the
    answer they belong to, created before them) read just before that answer:
    user, assistant calls, tool results, ..., answer.
    """
    anchor = M.meta["answer_id"].as_integer()
    keys: list[Any] = [sa.func.coalesce(anchor, M.id), anchor.is_(None), M.id]
    return [k.desc() for k in keys] if descending else keys


@dataclass(frozen=True)
class Models:
    """The concrete model classes of one ``(db, prefix)``."""

    conversation: type[ConversationMixin]
    message: type[MessageMixin]
    prefix: str


_defined: WeakKeyDictionary[Any, dict[str, Models]] = WeakKeyDictionary()


def define_models(db: Any, prefix: str) -> Models:
    """The ``Conversation`` and ``Message`` classes on ``db.Model`` with tables ``<prefix>...``.

    Defined once per ``db``: a second ``AISSE(db=db)`` reuses them, since a metadata
    refuses a table defined twice (and a declarative registry a class name).
    """
    known = _defined.setdefault(db, {})
    if prefix in known:
        return known[prefix]
    if known:
        raise ConfigurationError(
            f"This db already holds the conversation tables with prefix {next(iter(known))!r};"
            f" one db takes one AI_SSE_TABLE_PREFIX, not also {prefix!r}."
        )
    base = db.Model
    message_cls: type[MessageMixin]

    # The base is the app's own declarative class, only known at run time.
    class AISSEConversation(ConversationMixin, base):  # type: ignore[misc,valid-type]
        __tablename__ = f"{prefix}conversations"
        __ai_sse_prefix__ = prefix

        messages: Mapped[list[MessageMixin]] = relationship(
            lambda: message_cls,
            back_populates="conversation",
            order_by=lambda: message_order(message_cls),
            cascade="all, delete-orphan",
            passive_deletes=True,
        )

    class AISSEMessage(MessageMixin, base):  # type: ignore[misc,valid-type]
        __tablename__ = f"{prefix}messages"
        __ai_sse_prefix__ = prefix

        conversation: Mapped[ConversationMixin] = relationship(
            lambda: AISSEConversation, back_populates="messages"
        )

    message_cls = AISSEMessage
    known[prefix] = Models(AISSEConversation, AISSEMessage, prefix)
    return known[prefix]
