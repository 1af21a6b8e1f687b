"""The normalized data every provider adapter produces and the engine consumes.

A provider turns its own wire format into a flat sequence of :class:`Chunk`
objects; nothing past the adapter knows which provider spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Role = Literal["system", "user", "assistant"]
ChunkKind = Literal["text", "reasoning", "tool_call", "finish", "usage"]

ROLES: tuple[str, ...] = ("system", "user", "assistant")


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call; pieces with the same ``index`` join into one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(slots=True)  # not frozen: built once per token, and frozen init costs twice as much
class Chunk:
    """One normalized piece of a streamed answer (treat it as read-only).

    ``kind`` says which field matters: ``text`` and ``reasoning`` carry
    ``text``; ``tool_call`` carries ``tool_call``; ``finish`` carries
    ``finish_reason`` (normalized: ``stop``, ``length``, ``tool_calls``,
    ``content_filter``, ``cancelled``, ``error``) and ``raw_finish_reason`` (the
    provider's own word); ``usage`` carries ``usage``.
    """

    kind: ChunkKind
    text: str = ""
    tool_call: ToolCallDelta | None = None
    finish_reason: str | None = None
    raw_finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None

    @classmethod
    def delta(cls, text: str) -> Chunk:
        return cls("text", text)

    @classmethod
    def finish(cls, reason: str, raw: str | None = None) -> Chunk:
        return cls("finish", finish_reason=reason, raw_finish_reason=raw or reason)


@dataclass(slots=True)
class ChatRequest:
    """What to ask: provider-neutral, one type from validation to the provider.

    ``conversation_id`` names a stored conversation (persistence): its history is
    added to ``messages`` before the request goes upstream. ``options`` are the
    adapter's extra body fields.
    """

    messages: list[Message]
    model: str
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    conversation_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Answer:
    """A whole answer, as :meth:`AISSE.ask` returns it."""

    text: str
    finish_reason: str | None
    model: str
    provider: str
    usage: Usage | None = None
    raw_finish_reason: str | None = None
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "raw_finish_reason": self.raw_finish_reason,
            "model": self.model,
            "provider": self.provider,
            "usage": self.usage.to_dict() if self.usage else None,
            "reasoning": self.reasoning or None,
            "tool_calls": self.tool_calls or None,
        }


class AnswerBuilder:
    """Folds chunks into an :class:`Answer`; shared by ``ask()`` and persistence."""

    def __init__(self, *, model: str, provider: str) -> None:
        self.model = model
        self.provider = provider
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.raw_finish_reason: str | None = None
        self.usage: Usage | None = None
        self.chunks = 0

    def add(self, chunk: Chunk) -> None:
        self.chunks += 1
        if chunk.kind == "text":
            self.text_parts.append(chunk.text)
        elif chunk.kind == "reasoning":
            self.reasoning_parts.append(chunk.text)
        elif chunk.kind == "tool_call" and chunk.tool_call is not None:
            delta = chunk.tool_call
            call = self.tool_calls.setdefault(
                delta.index, {"id": None, "name": None, "arguments": ""}
            )
            call["id"] = delta.id or call["id"]
            call["name"] = delta.name or call["name"]
            call["arguments"] += delta.arguments
        elif chunk.kind == "finish":
            self.finish_reason = chunk.finish_reason
            self.raw_finish_reason = chunk.raw_finish_reason
        elif chunk.kind == "usage":
            self.usage = chunk.usage
        if chunk.model:
            self.model = chunk.model

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def answer(self) -> Answer:
        return Answer(
            text=self.text,
            finish_reason=self.finish_reason,
            raw_finish_reason=self.raw_finish_reason,
            model=self.model,
            provider=self.provider,
            usage=self.usage,
            reasoning="".join(self.reasoning_parts),
            tool_calls=[self.tool_calls[i] for i in sorted(self.tool_calls)],
        )
