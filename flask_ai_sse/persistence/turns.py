"""A stored turn: the answer of one stream (or ask) written into its conversation.

:meth:`ConversationStore.begin_turn` stores the user's message and a
``streaming`` answer before the upstream call; :class:`PersistObserver` then
follows the generation in the producer's greenlet, writing partial text at
intervals and the end state, each write its own short transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from .._turn import Turn
from ..chunks import Answer, AnswerBuilder, ChatRequest, Chunk
from ..engine import Generation
from .messages import MessageStream
from .replay import answer_tool_meta

logger = logging.getLogger("flask_ai_sse")


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
            **answer_tool_meta(generation.answer),
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


class StoredTurn(Turn):
    """A turn whose answer is stored in ``message`` (a ``streaming`` message)."""

    def __init__(self, request: ChatRequest, message: MessageStream, *, stream_id: str) -> None:
        super().__init__(
            request,
            stream_id=stream_id,
            start={"conversation_id": message.conversation_id, "message_id": message.id},
            observers=(PersistObserver(message),),
        )
        self.message = message

    def answered(self, answer: Answer) -> None:
        """Store a whole answer (``POST /ask``)."""
        self.message.meta.pop("stream_id", None)  # no stream to attach to
        self.message.append(answer.text, flush=False)
        meta = answer_meta(answer)
        if answer.turns:  # tool steps, replayed with the history (see .replay)
            meta["tool_turns"] = answer.turns
        if answer.finish_reason == "tool_calls" and answer.tool_calls:
            meta["tool_calls"] = answer.tool_calls
        self.message.complete(meta=meta)

    def failed(self, error: BaseException) -> None:
        """The upstream refused before any byte: the stored answer is ``failed``."""
        try:
            self.message.fail(error=error)
        except Exception:
            logger.exception("could not mark message %s failed", self.message.id)
