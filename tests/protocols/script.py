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

#: A server tool runs (its call has a result), then the model calls two client tools
#: (one streamed in pieces, one whole): the stream ends for the client to run them.
CLIENT = [
    pack("start", {"stream_id": STREAM_ID, "model": "m", "provider": "fake"}),
    pack("tool_call_delta", {"index": 0, "id": "call_s", "name": "get_order", "arguments": "{}"}),
    pack("tool_call", {"id": "call_s", "name": "get_order", "arguments": {}}),
    pack("tool_result", {"id": "call_s", "name": "get_order", "result": "shipped"}),
    pack("text", {"content": "Pick one."}),
    pack("tool_call_delta", {"index": 0, "id": "call_c", "name": "pick", "arguments": '{"n":'}),
    pack("tool_call_delta", {"index": 0, "id": None, "name": None, "arguments": "2}"}),
    pack("tool_call", {"id": "call_c", "name": "pick", "arguments": {"n": 2}}),
    pack("tool_call", {"id": "call_d", "name": "confirm", "arguments": {}}),
    pack(
        "done",
        {
            "finish_reason": "tool_calls",
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
