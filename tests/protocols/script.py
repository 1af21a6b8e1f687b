"""Neutral event scripts shared by the protocol tests (what a producer writes to a log)."""

from __future__ import annotations

from flask_ai_sse.protocols import END, pack

STREAM_ID = "s1"

#: Every kind once or more: reasoning, then text, a tool call streamed in pieces (the
#: second piece names only its index, as OpenAI's do), a whole call, results, a new step.
RICH = [
    pack("start", {"stream_id": STREAM_ID, "model": "m", "provider": "fake"}),
    pack("reasoning", {"content": "Think"}),
    pack("reasoning", {"content": "ing."}),
    pack("text", {"content": "Let me look.\n"}),
    pack("tool_call_delta", {"index": 0, "id": "call_1", "name": "weather", "arguments": '{"ci'}),
    pack("tool_call_delta", {"index": 0, "id": None, "name": None, "arguments": 'ty":"Oslo"}'}),
    pack("tool_call", {"id": "call_1", "name": "weather", "arguments": {"city": "Oslo"}}),
    pack("tool_call", {"id": "call_2", "name": "time", "arguments": {}}),
    pack("tool_result", {"id": "call_1", "name": "weather", "result": {"temp": 3}}),
    pack(
        "tool_result",
        {"id": "call_2", "name": "time", "error": {"type": "tool_error", "message": "No clock."}},
    ),
    pack("text", {"content": "It is 3 °C."}),
    pack("progress", {"chunks": 9}),
    pack(
        "done",
        {
            "finish_reason": "stop",
            "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
            "model": "m",
        },
    ),
    END,
]

#: Text, then an error.
FAILED = [
    pack("start", {"stream_id": STREAM_ID, "model": "m", "provider": "fake"}),
    pack("text", {"content": "Hal"}),
    pack("error", {"error": {"type": "provider_error", "message": "The provider failed."}}),
    END,
]

#: Cancelled mid-text.
CANCELLED = [
    pack("start", {"stream_id": STREAM_ID, "model": "m", "provider": "fake", "message_id": 7}),
    pack("text", {"content": "Hal"}),
    pack("done", {"finish_reason": "cancelled", "usage": None}),
    END,
]
