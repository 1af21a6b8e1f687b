"""A stream with a conversation: its turn stored around one generation.

:func:`begin_turn` runs before the upstream call (in the request): it checks
the conversation's owner, stores the user's message and a ``streaming``
answer, and builds the context. :class:`PersistObserver` then follows the
generation in the producer's greenlet, writing partial text at intervals and
the end state, each write its own short transaction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..chunks import Answer, AnswerBuilder, Chunk
from ..engine import Engine, Generation, Observer
from ..errors import ValidationError
from ..validation import AskParams
from .store import MessageStream

if TYPE_CHECKING:
    from ..extension import AppState

logger = logging.getLogger("flask_ai_sse")

#: The option of ``ai.ask_stream(..., conversation=c, message_meta={...})`` whose
#: dict is kept in the answer's ``meta``; it is not sent upstream.
MESSAGE_META_OPTION = "message_meta"


class PersistObserver:
    """Writes one generation into its ``streaming`` message (an engine observer)."""

    def __init__(self, message: MessageStream) -> None:
        self.message = message
        self._seen = 0

    def started(self, generation: Generation) -> None:
        """Nothing to do: the message was stored before the upstream call."""

    def chunk(self, generation: Generation, chunk: Chunk) -> None:
        self._catch_up(generation, flush=True)

    def _catch_up(self, generation: Generation, *, flush: bool) -> None:
        """Append the answer's new text: the provider's own pieces, whatever the engine
        sends to clients (sentence mode holds text back and may skip notifying)."""
        parts = generation.answer.text_parts
        for text in parts[self._seen :]:
            self.message.append(text, flush=flush)
        self._seen = len(parts)

    def finished(self, generation: Generation) -> None:
        if self.message.status == "streaming":
            self._catch_up(generation, flush=False)
        meta = {
            **generation.stats(),
            **answer_meta(generation.answer),
            "finish_reason": generation.finish_reason,
        }
        if generation.usage is not None:  # settled on every ending, estimated if need be
            meta["usage"] = generation.usage
        if generation.cost is not None:
            meta["cost"] = generation.cost
        reason = generation.abort_reason
        if generation.status == "failed":
            self.message.fail(reason or "error", error=generation.error, meta=meta)
        elif generation.status == "cancelled":
            self.message.cancel(reason or "cancelled", meta=meta)
        else:
            self.message.complete(meta=meta)


def answer_meta(answer: Answer | AnswerBuilder) -> dict[str, Any]:
    """What an answer says about itself, as kept in ``meta``."""
    return {
        "model": answer.model,
        "provider": answer.provider,
        "finish_reason": answer.finish_reason or "stop",
        "raw_finish_reason": answer.raw_finish_reason,
        "usage": answer.usage.to_dict() if answer.usage else None,
    }


@dataclass
class Turn:
    """What a stream sends and adds: context, options, ``start`` extras, observers."""

    params: AskParams
    options: dict[str, Any]
    stream_id: str | None = None
    start: dict[str, Any] | None = None
    observers: tuple[Observer, ...] = ()
    message: MessageStream | None = None

    def answered(self, answer: Answer) -> None:
        """Store a whole answer (``POST /ask``), when the turn has a conversation."""
        if self.message is not None:
            self.message.meta.pop("stream_id", None)  # no stream to attach to
            self.message.append(answer.text, flush=False)
            self.message.complete(meta=answer_meta(answer))


@contextmanager
def begin_turn(
    state: AppState,
    params: AskParams,
    *,
    owner: str | None,
    options: Mapping[str, Any] | None,
) -> Iterator[Turn]:
    """Prepare a stream (or an ask); with ``params.conversation_id``, store its turn first.

    Without a conversation nothing is stored. A failure inside the block (the
    upstream refused, before any byte) marks the stored answer ``failed``.
    """
    options = dict(options or {})
    custom = options.pop(MESSAGE_META_OPTION, None) or {}
    if params.conversation_id is None:
        yield Turn(params, options)
        return
    if state.persistence is None:
        raise ValidationError(
            "This server does not store conversations.",
            type="conversations_disabled",
            field="conversation_id",
        )
    stream_id = Engine.new_stream_id()
    meta = {
        **custom,
        "stream_id": stream_id,
        "model": params.model or state.provider.model,
        "provider": state.provider.name,
    }
    message, context = state.persistence.store.start_turn(
        params.conversation_id, params.messages, meta=meta, owner=owner
    )
    turn = Turn(
        params=dataclasses.replace(params, messages=context),
        options=options,
        stream_id=stream_id,
        start={"conversation_id": params.conversation_id, "message_id": message.id},
        observers=(PersistObserver(message),),
        message=message,
    )
    try:
        yield turn
    except BaseException as exc:
        try:
            message.fail(error=exc)
        except Exception:
            logger.exception("could not mark message %s failed", message.id)
        raise
