"""A message written piece by piece while its answer streams.

The partial text is written every ``AI_SSE_PERSIST_INTERVAL`` seconds or
``AI_SSE_PERSIST_EVERY`` appends, then the end state, each write its own short
transaction: no session is held across a stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, cast

import sqlalchemy as sa

from ..errors import AISSEError
from ._database import Database
from .models import Models, utcnow


def error_meta(error: BaseException) -> dict[str, Any]:
    """An error as stored in ``meta``: the library's public type and message, nothing internal."""
    if not isinstance(error, AISSEError):
        error = AISSEError()
    return cast(dict[str, Any], error.to_dict()["error"])


class MessageWriter:
    """The two writes of a streaming message, each its own short transaction."""

    def __init__(self, database: Database, models: Models) -> None:
        self.database = database
        self.models = models

    def write_partial(self, message_id: int, content: str) -> bool:
        M = self.models.message
        with self.database.transaction() as session:
            result = session.execute(
                sa.update(M)
                .where(M.id == message_id, M.status == "streaming")
                .values(content=content, updated_at=utcnow())
            )
        return bool(cast("sa.CursorResult[Any]", result).rowcount)

    def insert_before(
        self,
        answer_id: int,
        conversation_id: str,
        message: Mapping[str, Any],
        *,
        clear_answer: bool = False,
    ) -> int:
        """Store a whole message that reads just before the answer ``answer_id`` (a tool
        step's call or result, see :func:`.models.message_order`); ``clear_answer`` empties
        the answer's partial text in the same transaction (it moved into this message)."""
        M, C = self.models.message, self.models.conversation
        now = utcnow()
        row = M(
            conversation_id=conversation_id,
            role=message["role"],
            content=message.get("content", ""),
            status=message.get("status", "completed"),
            meta={**message.get("meta", {}), "answer_id": answer_id},
            created_at=now,
            updated_at=now,
        )
        with self.database.transaction() as session:
            session.add(row)
            if clear_answer:
                session.execute(
                    sa.update(M)
                    .where(M.id == answer_id, M.status == "streaming")
                    .values(content="", updated_at=now)
                )
            session.execute(sa.update(C).where(C.id == conversation_id).values(updated_at=now))
            session.flush()
            return row.id

    def write_end(
        self, message_id: int, conversation_id: str, status: str, content: str, meta: dict[str, Any]
    ) -> bool:
        M, C = self.models.message, self.models.conversation
        now = utcnow()
        with self.database.transaction() as session:
            result = session.execute(
                sa.update(M)
                .where(M.id == message_id, M.status == "streaming")
                .values(status=status, content=content, meta=meta, updated_at=now)
            )
            session.execute(sa.update(C).where(C.id == conversation_id).values(updated_at=now))
        return bool(cast("sa.CursorResult[Any]", result).rowcount)


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
        writer: MessageWriter,
        message_id: int,
        conversation_id: str,
        meta: Mapping[str, Any] | None = None,
        *,
        interval: float,
        every: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.id = message_id
        self.conversation_id = conversation_id
        self.meta: dict[str, Any] = dict(meta or {})
        self.status = "streaming"
        self.interval = interval
        self.every = every
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
        self.writer.write_partial(self.id, self.text)

    def insert_before(self, message: Mapping[str, Any], *, take_text: bool = False) -> int:
        """Store a whole message (``role``, ``content``, ``status``, ``meta``) that reads
        just before this one: a tool step's call or result.

        ``take_text``: the text so far is that message's (a tool step's text, said
        before its calls); it moves out of this one, which goes on with what follows.
        """
        if take_text:
            message = {**message, "content": self.text}
            self._parts.clear()
            self._written_chunks = self._chunks
        return self.writer.insert_before(
            self.id, self.conversation_id, message, clear_answer=take_text
        )

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
        return self.writer.write_end(self.id, self.conversation_id, status, self.text, self.meta)

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
