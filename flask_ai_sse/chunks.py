"""The normalized data every provider adapter produces and the engine consumes.

A provider turns its own wire format into a flat sequence of :class:`Chunk`
objects; nothing past the adapter knows which provider spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Role = Literal["system", "user", "assistant", "tool"]
#: ``tool_call`` is a piece of a call as the provider streamed it; with tools or a
#: schema (see :mod:`flask_ai_sse._steps`) come ``tool_call_end`` (a whole call),
#: ``tool_result``, ``step`` (a new upstream request begins) and ``output``.
ChunkKind = Literal[
    "text",
    "reasoning",
    "tool_call",
    "finish",
    "usage",
    "tool_call_end",
    "tool_result",
    "step",
    "output",
]

ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


class ToolCall(TypedDict):
    """A whole tool call: ``arguments`` is the decoded JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]


class _MessageBase(TypedDict):
    role: Role
    content: str | list[dict[str, Any]]


class Message(_MessageBase, total=False):
    """``content`` is text or a list of parts (see :mod:`flask_ai_sse._parts`)."""

    #: role ``tool``: the call this message answers.
    tool_call_id: str
    #: role ``assistant``: the calls the model made.
    tool_calls: list[ToolCall]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to a model: what each adapter translates."""

    name: str
    description: str
    parameters: dict[str, Any]


def text_of(content: str | list[dict[str, Any]]) -> str:
    """The text of a message's content (its text parts joined; images left out)."""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


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
    #: ``tool_call_end``, ``tool_result``, ``step`` and ``output``: the event's data.
    data: Any = None

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
    #: Tools offered to the model (what the adapter translates), and how it may
    #: choose (``auto``, ``none``, ``required`` or a tool's name).
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | None = None
    #: A JSON Schema the answer must follow (structured output).
    schema: dict[str, Any] | None = None
    #: ``tools=`` as the caller gave them (registered names, functions, client-tool
    #: dicts; on the routes, names within ``AI_SSE_TOOLS``), resolved into ``tools``
    #: when the request is opened (see :mod:`flask_ai_sse._steps`).
    requested_tools: list[Any] | None = None
    #: The most upstream requests the step loop may make (``None``: ``AI_SSE_MAX_STEPS``).
    max_steps: int | None = None


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
    #: With ``schema=``: the parsed, validated output.
    data: Any = None
    #: How many upstream requests the answer took (tools run between them).
    steps: int = 1
    #: The steps that called tools, with their text, calls and results (for history).
    turns: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "steps": self.steps,
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
        #: Whole calls of the current step (``tool_call_end``) and their results.
        self.calls: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        #: Earlier steps that called tools: ``{"content", "tool_calls", "results"}`` each.
        self.turns: list[dict[str, Any]] = []
        self._step_start = 0
        self.output: Any = None
        self.steps = 0

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
        elif chunk.kind == "tool_call_end":
            self.calls.append(chunk.data)
        elif chunk.kind == "tool_result":
            self.results.append(chunk.data)
        elif chunk.kind == "step":
            self.steps += 1
            if self.calls:
                step_text = "".join(self.text_parts[self._step_start :])
                self.turns.append(
                    {"content": step_text, "tool_calls": self.calls, "results": self.results}
                )
            self._step_start = len(self.text_parts)
            self.tool_calls.clear()
            self.calls, self.results = [], []
        elif chunk.kind == "output":
            self.output = chunk.data
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
            tool_calls=self.calls or [self.tool_calls[i] for i in sorted(self.tool_calls)],
            data=self.output,
            steps=max(self.steps, 1),
            turns=self.turns,
        )
