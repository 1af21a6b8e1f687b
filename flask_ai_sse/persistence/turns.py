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
from .replay import UNFINISHED, call_row, result_row

logger = logging.getLogger("flask_ai_sse")


class PersistObserver:
    """Writes one generation into its ``streaming`` message (an engine observer).

    A stream that runs tools also stores each step as rows of its own, reading
    before the answer: the assistant message with the step's text and calls (when
    its first result arrives), then one ``tool`` row per result as it arrives. A
    stream that ends while tools run stores a ``cancelled`` (or ``failed``) result
    for each call still unanswered, so every stored call has its result.
    """

    def __init__(self, message: MessageStream) -> None:
        self.message = message
        self._seen = 0
        #: The step's whole calls, not stored yet (client calls stay with the answer).
        self._calls: list[dict[str, Any]] = []
        #: Stored calls whose result is not stored yet, by id.
        self._open: dict[str, dict[str, Any]] = {}

    def started(self, generation: Generation) -> None:
        """Nothing to do: the message was stored before the upstream call."""

    def chunk(self, generation: Generation, chunk: Chunk) -> None:
        self._catch_up(generation, flush=True)
        if chunk.kind == "tool_call_end":
            self._calls.append(chunk.data)
        elif chunk.kind == "tool_result":
            self._store_calls()
            self._open.pop(chunk.data["id"], None)
            self.message.insert_before(result_row(chunk.data))

    def _store_calls(self) -> None:
        """The step's text and calls as their own row: the tools are running."""
        if self._calls:
            self.message.insert_before(call_row("", self._calls), take_text=True)
            self._open = {c["id"]: c for c in self._calls}
            self._calls = []

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
        answer = generation.answer
        meta = {
            **generation.stats(),
            **answer_meta(answer),
            "finish_reason": generation.finish_reason,
        }
        if answer.calls and answer.finish_reason == "tool_calls":
            meta["tool_calls"] = answer.calls  # for the client to run: this answer's own
        if generation.usage is not None:  # settled on every ending, estimated if need be
            meta["usage"] = generation.usage
        if generation.cost is not None:
            meta["cost"] = generation.cost
        reason = generation.abort_reason
        if generation.status != "completed" and self.message.status == "streaming":
            self._close_open_calls(generation.status)
        if generation.status == "failed":
            self.message.fail(reason or "error", error=generation.error, meta=meta)
        elif generation.status == "cancelled":
            self.message.cancel(reason or "cancelled", meta=meta)
        else:
            self.message.complete(meta=meta)

    def _close_open_calls(self, status: str) -> None:
        """Ended while tools ran: each unanswered call gets a result saying so."""
        try:
            self._store_calls()
            for call in self._open.values():
                result = {"id": call["id"], "name": call.get("name"), "error": UNFINISHED}
                self.message.insert_before(result_row(result, status))
            self._open = {}
        except Exception:
            logger.exception("could not store the open tool calls of %s", self.message.id)


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
        text = answer.text
        for turn in answer.turns:  # each tool step as its own rows, before the answer
            self.message.insert_before(call_row(turn["content"], turn["tool_calls"]))
            for result in turn["results"]:
                self.message.insert_before(result_row(result))
            text = text.removeprefix(turn["content"])
        self.message.append(text, flush=False)
        meta = answer_meta(answer)
        if answer.finish_reason == "tool_calls" and answer.tool_calls:
            meta["tool_calls"] = answer.tool_calls
        self.message.complete(meta=meta)

    def failed(self, error: BaseException) -> None:
        """The upstream refused before any byte: the stored answer is ``failed``."""
        try:
            self.message.fail(error=error)
        except Exception:
            logger.exception("could not mark message %s failed", self.message.id)
