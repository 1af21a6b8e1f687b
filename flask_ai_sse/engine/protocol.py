"""What a generation writes to its log: neutral events (see :mod:`flask_ai_sse.protocols`).

::

    start      {stream_id, model, provider, ...}        once, first
    text       {"content": "..."}                       as the provider sends it
    reasoning / tool_call_delta / tool_call / tool_result / progress
    done | error                                        exactly one terminal event
    end                                                 data: [DONE] in every protocol

Each reader encodes these for its own protocol; the SSE id of an event is
``<stream_id>:<seq>``, its place in the log, so that a client reconnecting
anywhere with ``Last-Event-ID`` names both the stream and the position to
resume after, whatever protocol it reads.
"""

from __future__ import annotations

from ..chunks import Chunk
from ..protocols import END, event_id, pack, pack_text

__all__ = ["END", "entry_for_chunk", "event_id", "pack", "pack_text", "parse_event_id"]


def parse_event_id(value: str | None) -> tuple[str, int] | None:
    """``(stream_id, seq)`` from a ``Last-Event-ID``, or ``None`` if it is not ours."""
    if not value:
        return None
    stream_id, sep, seq = value.rpartition(":")
    if not sep or not stream_id or not seq.isdigit() or len(seq) > 12:
        return None
    return stream_id, int(seq)


def entry_for_chunk(chunk: Chunk) -> bytes | None:
    """The log entry for a streamed chunk; ``None`` for chunks folded into ``done``."""
    if chunk.kind == "text":
        return pack_text(chunk.text)
    if chunk.kind == "reasoning":
        return pack("reasoning", {"content": chunk.text})
    if chunk.kind == "tool_call" and chunk.tool_call is not None:
        return pack("tool_call_delta", chunk.tool_call.to_dict())
    if chunk.kind == "tool_call_end":  # a whole call (the step loop, flask_ai_sse._steps)
        return pack("tool_call", chunk.data)
    if chunk.kind == "tool_result":
        return pack("tool_result", chunk.data)
    return None
