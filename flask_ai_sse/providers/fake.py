"""The built-in fake provider: deterministic streamed text, no network, no key.

It is the embedded default so that the demo and tests run anywhere. Its answers
say plainly that no model was called. Tests script it with :class:`FakeReply`
(text, chunks, delays, stalls and failures before or during the stream).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..chunks import ChatRequest, Chunk, ToolCallDelta, Usage, text_of
from ..errors import AISSEError, ProviderError
from .base import ChunkStream, Provider, ProviderConfig

_WORDS = re.compile(r"\s*\S+\s*|\s+")

DEFAULT_TEMPLATE = (
    "This answer comes from the fake provider of flask-ai-sse: no language model was "
    'called. You said: "{prompt}". Set AI_SSE_PROVIDER to openai, anthropic, gemini or '
    "an OpenAI-compatible preset to stream real answers."
)


def split_tokens(text: str) -> list[str]:
    """Split text into word-sized pieces that join back to exactly ``text``."""
    return _WORDS.findall(text) or ([text] if text else [])


@dataclass(frozen=True)
class FakeToolCall:
    """A scripted tool call. ``arguments`` given as a string is sent as it is (e.g.
    JSON that does not parse); the arguments stream in two pieces."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass
class FakeReply:
    """One scripted answer of :class:`FakeProvider`.

    ``chunks`` overrides how ``text`` is split. ``fail_before`` raises from
    ``open()`` (before the first byte); ``fail_after`` chunks into the stream,
    ``error`` is raised instead of finishing. ``stall`` seconds of silence
    happen after ``stall_after`` chunks.
    """

    text: str | None = None
    chunks: Sequence[str] | None = None
    delay: float | None = None
    finish_reason: str = "stop"
    reasoning: Sequence[str] = ()
    fail_before: AISSEError | None = None
    fail_after: int | None = None
    error: AISSEError = field(
        default_factory=lambda: ProviderError("The fake provider failed on purpose.")
    )
    stall: float = 0.0
    stall_after: int = 0
    model: str | None = None
    #: Calls made after the text; the finish reason is then ``tool_calls``.
    tool_calls: Sequence[FakeToolCall] = ()


class FakeChunkStream(ChunkStream):
    def __init__(
        self,
        reply: FakeReply,
        pieces: list[str],
        delay: float,
        model: str,
        ids: Iterator[int] | None = None,
    ) -> None:
        super().__init__(provider=FakeProvider.name, model=model)
        self._reply = reply
        self._pieces = pieces
        self._ids = ids or itertools.count(1)
        self._delay = delay
        self.closed = False

    def _wait(self, seconds: float) -> bool:
        """Sleep, waking early on abort; True when aborted."""
        if seconds > 0:
            return self._aborted.wait(seconds)
        return self._aborted.is_set()

    def __iter__(self) -> Iterator[Chunk]:
        reply = self._reply
        for piece in reply.reasoning:
            if self._wait(self._delay):
                return
            yield Chunk("reasoning", piece)
        for i, piece in enumerate(self._pieces):
            if reply.stall and i == reply.stall_after and self._wait(reply.stall):
                return
            if reply.fail_after is not None and i == reply.fail_after:
                raise reply.error
            if self._wait(self._delay):
                return
            yield Chunk("text", piece)
        if reply.stall and reply.stall_after >= len(self._pieces) and self._wait(reply.stall):
            return
        if reply.fail_after is not None and reply.fail_after >= len(self._pieces):
            raise reply.error
        for index, call in enumerate(reply.tool_calls):
            if self._wait(self._delay):
                return
            arguments = (
                call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
            )
            half = len(arguments) // 2
            call_id = call.id or f"call_fake_{next(self._ids)}"
            for piece, first in ((arguments[:half], True), (arguments[half:], False)):
                delta = ToolCallDelta(
                    index, call_id if first else None, call.name if first else None, piece
                )
                yield Chunk("tool_call", tool_call=delta)
        completion = len(self._pieces) + len(reply.tool_calls)
        finish = reply.finish_reason
        if reply.tool_calls and finish == "stop":
            finish = "tool_calls"
        yield Chunk.finish(finish)
        yield Chunk("usage", usage=Usage(0, completion, completion))

    def close(self) -> None:
        self.closed = True


class FakeProvider(Provider):
    """Streams deterministic text. Configure with ``AI_SSE_FAKE_*`` keys or a script.

    With a ``script`` (a list of :class:`FakeReply`), each ``open()`` takes the
    next reply; the last one repeats. Without one, it answers from the prompt
    using ``AI_SSE_FAKE_RESPONSE`` (a template with ``{prompt}``) or a default.
    ``requests`` records every :class:`ChatRequest` it was sent.
    """

    name = "fake"
    default_model = "fake-1"

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        script: Sequence[FakeReply | str] = (),
        delay: float | None = None,
        template: str | None = None,
    ) -> None:
        config = config or ProviderConfig(name=self.name)
        super().__init__(config)
        opts: dict[str, Any] = config.options
        self.delay = float(delay if delay is not None else opts.get("delay", 0.02))
        self.template = template or opts.get("response") or DEFAULT_TEMPLATE
        self.script = [r if isinstance(r, FakeReply) else FakeReply(text=r) for r in script]
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _next_reply(self) -> FakeReply:
        with self._lock:
            if not self.script:
                return FakeReply()
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def open(self, request: ChatRequest) -> ChunkStream:
        self.requests.append(request)
        reply = self._next_reply()
        if reply.fail_before is not None:
            raise reply.fail_before
        if reply.chunks is not None:
            pieces = list(reply.chunks)
        else:
            prompt = next(
                (text_of(m["content"]) for m in reversed(request.messages) if m["role"] == "user"),
                "",
            )
            text = reply.text if reply.text is not None else self.template.format(prompt=prompt)
            pieces = split_tokens(text)
        delay = self.delay if reply.delay is None else reply.delay
        return FakeChunkStream(reply, pieces, delay, reply.model or request.model, self._ids)
