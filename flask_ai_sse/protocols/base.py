"""Neutral events and the encoder interface: a generation written once, read in any protocol.

No Flask, no I/O here (like :mod:`flask_ai_sse.sse`). The producer appends
*neutral events* to the stream log; every reader owns an :class:`Encoder` that
turns them into its protocol's bytes::

    producer ──pack(kind, data)──▶ log: b"text\\n{\\"content\\":\\"Hel\\"}", ...
                                     │
        reader (default) ◀──encode───┤   id: s:2 / data: {"content":"Hel"}
        reader (vercel)  ◀──encode───┤   id: s:2 / data: {"type":"text-delta",...}
        reader (openai)  ◀──encode───┘   id: s:2 / data: {"object":"chat.completion.chunk",...}

A neutral event is its kind, a line feed, and its data as compact JSON: exactly
the ``data`` of the default protocol, so the default encoder only adds the
``event``/``id`` lines around the stored bytes and never parses JSON. The SSE
``id`` (``<stream_id>:<seq>``) comes from the event's place in the log, so every
protocol resumes with ``Last-Event-ID``; when one neutral event becomes several
SSE events (``text-start`` + ``text-delta``), they share its id.

Kinds and their data (the default protocol's, see docs/wire.rst):

===================  ===============================================================
``start``            ``{"stream_id", "model", "provider", ...}``
``text``             ``{"content": str}``
``reasoning``        ``{"content": str}``
``tool_call_delta``  ``{"id", "name", "arguments": str}`` (``index`` may replace ``id``
                     after the first piece): a piece of a call's arguments
``tool_call``        ``{"id", "name", "arguments": object}``: a complete call
``tool_result``      ``{"id", "name", "result": any}`` or ``{"id", "name", "error": {...}}``
``progress``         ``{"chunks", "characters", ...}``
``done``             ``{"finish_reason", "usage", "model", ...}``
``error``            ``{"error": {"type", "message"}}``
``end``              no data: ``data: [DONE]`` in every protocol
===================  ===============================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from ..sse import encode, json_dumps

__all__ = ["END", "KINDS", "Encoder", "call_identity", "event_id", "pack", "pack_text", "unpack"]

KINDS: Final = (
    "start",
    "text",
    "reasoning",
    "tool_call_delta",
    "tool_call",
    "tool_result",
    "progress",
    "done",
    "error",
    "end",
)
#: The log entry that ends every stream (``data: [DONE]``); it takes a place in the log.
END: Final = b"end\n"
_TEXT: Final = b"text\n"


def pack(kind: str, data: Any) -> bytes:
    """A neutral event as a log entry: ``kind``, LF, compact JSON."""
    return f"{kind}\n{json_dumps(data)}".encode()


def pack_text(text: str) -> bytes:
    """``pack("text", {"content": text})``, for the hot path."""
    return _TEXT + json_dumps({"content": text}).encode()


def unpack(entry: bytes) -> tuple[str, Any]:
    """``(kind, data)`` of a log entry (``data`` is ``None`` for ``end``)."""
    kind, _, payload = entry.partition(b"\n")
    return kind.decode("ascii"), json.loads(payload) if payload else None


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}:{seq}"


class Encoder:
    """Turns a stream's neutral events into one protocol's bytes, for one reader.

    ``encode(first_seq, entries)`` is called with consecutive log entries; a
    stateful protocol remembers what it sent (an open text part, a role chunk).
    A reader that resumes after ``n`` first feeds entries ``1..n`` to
    :meth:`skip`, so it sends exactly the bytes an unbroken reader would have
    sent from there on.
    """

    #: The ``?protocol=`` value.
    name: ClassVar[str]
    #: Whether :meth:`skip` must see the entries before a resume point.
    stateful: ClassVar[bool] = False
    #: Response headers besides the event-stream ones.
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, stream_id: str, *, retry: int = 3000, **options: Any) -> None:
        self.stream_id = stream_id
        self.retry = retry
        self.options = options

    @property
    def prefix(self) -> bytes:
        """What a response starts with, before the first event."""
        return encode(retry=self.retry)

    @property
    def keepalive(self) -> bytes:
        return b": keepalive\n\n"

    def encode(self, first_seq: int, entries: Sequence[bytes]) -> bytes:
        raise NotImplementedError

    def skip(self, first_seq: int, entries: Sequence[bytes]) -> None:
        """Take the state of having sent ``entries`` without sending them."""
        if self.stateful:
            self.encode(first_seq, entries)

    def failure(self, seq: int, error: Mapping[str, Any]) -> bytes:
        """The end of a response the store failed under (``error``: a ``to_dict()`` body).

        The id repeats the last one sent, so a resume stays exact.
        """
        return self.encode_one(seq, pack("error", error)) + self.encode_one(seq, END)

    def encode_one(self, seq: int, entry: bytes) -> bytes:
        return self.encode(seq, (entry,))


def call_identity(by_index: dict[Any, tuple[str, str]], data: Any) -> tuple[str, str]:
    """A call's ``(id, name)``; a later piece may name only its ``index`` (as OpenAI's do)."""
    index = data.get("index")
    if data.get("id") is None and index in by_index:
        return by_index[index]
    call = (str(data.get("id") or f"call_{index}"), str(data.get("name") or ""))
    if index is not None:
        by_index[index] = call
    return call
