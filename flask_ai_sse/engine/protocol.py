"""The default protocol: how a generation becomes SSE events (docs/wire.rst).

::

    retry: 3000                      once per connection
    event: start   id  data {...}    stream_id, model, provider, ...
    id  data {"content": "..."}      text, as unnamed (message) events
    event: reasoning / tool_call / progress
    event: done | error  id  data    exactly one terminal event
    data: [DONE]                     no id

Event ids are ``<stream_id>:<seq>`` so that a browser reconnecting anywhere with
``Last-Event-ID`` names both the stream and the position to resume after.
"""

from __future__ import annotations

from typing import Any

from ..chunks import Chunk
from ..sse import DONE, encode_json

__all__ = ["DONE", "encode_chunk", "encode_event", "event_id", "parse_event_id"]

_SEP = ":"


def event_id(stream_id: str, seq: int) -> str:
    return f"{stream_id}{_SEP}{seq}"


def parse_event_id(value: str | None) -> tuple[str, int] | None:
    """``(stream_id, seq)`` from a ``Last-Event-ID``, or ``None`` if it is not ours."""
    if not value:
        return None
    stream_id, sep, seq = value.rpartition(_SEP)
    if not sep or not stream_id or not seq.isdigit() or len(seq) > 12:
        return None
    return stream_id, int(seq)


def encode_event(stream_id: str, seq: int, data: Any, event: str | None = None) -> bytes:
    return encode_json(data, event=event, id=event_id(stream_id, seq))


def encode_chunk(stream_id: str, seq: int, chunk: Chunk) -> bytes | None:
    """The event for a streamed chunk; ``None`` for chunks folded into ``done``."""
    if chunk.kind == "text":
        return encode_event(stream_id, seq, {"content": chunk.text})
    if chunk.kind == "reasoning":
        return encode_event(stream_id, seq, {"content": chunk.text}, "reasoning")
    if chunk.kind == "tool_call" and chunk.tool_call is not None:
        return encode_event(stream_id, seq, chunk.tool_call.to_dict(), "tool_call")
    return None
