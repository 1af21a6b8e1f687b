"""Read SSE responses in tests: from bytes, byte chunks, or a Flask test response."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..sse import Comment, ServerSentEvent, SSEDecoder


def parse_sse(body: bytes | Iterable[bytes] | Any, *, comments: bool = False) -> list[Any]:
    """Events (and, with ``comments=True``, comments) of a whole SSE body.

    ``body`` may be bytes, an iterable of byte chunks, or a Flask/Werkzeug
    test response (its ``response`` iterable is read to the end).
    """
    if hasattr(body, "response") and hasattr(body, "status_code"):
        body = body.response
    chunks = [body] if isinstance(body, bytes) else body
    decoder = SSEDecoder(comments=comments)
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk if isinstance(chunk, bytes) else chunk.encode()))
    decoder.close()
    return out


@dataclass
class StreamResult:
    """A default-protocol stream, taken apart."""

    events: list[ServerSentEvent] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The answer: the ``content`` of every unnamed event, joined."""
        return "".join(
            e.json()["content"] for e in self.events if e.event == "message" and e.data != "[DONE]"
        )

    def named(self, name: str) -> list[ServerSentEvent]:
        return [e for e in self.events if e.event == name]

    @property
    def start(self) -> dict[str, Any]:
        return json.loads(self.named("start")[0].data)  # type: ignore[no-any-return]

    @property
    def terminal(self) -> ServerSentEvent | None:
        ends = [e for e in self.events if e.event in ("done", "error")]
        return ends[-1] if ends else None

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].data == "[DONE]"

    @property
    def last_event_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id]
        return ids[-1] if ids else None


def collect(body: bytes | Iterable[bytes] | Any) -> StreamResult:
    """Parse a default-protocol SSE body into a :class:`StreamResult`."""
    result = StreamResult()
    for item in parse_sse(body, comments=True):
        (result.comments if isinstance(item, Comment) else result.events).append(item)
    return result
