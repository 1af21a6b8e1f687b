"""The Anthropic Messages format: named events from ``message_start`` to ``message_stop``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ._base import Call, Frame, MockUpstream, sse
from ._server import RecordedRequest


class AnthropicMock(MockUpstream):
    """``POST /v1/messages``, streaming named events from ``message_start`` to ``message_stop``.

    Accepts the key as ``x-api-key`` or ``Authorization: Bearer`` (recent SDKs send either).
    """

    name = "anthropic"
    prefix = "/v1"
    default_model = "claude-sonnet-4-6"
    FINISH: ClassVar[dict[str, str]] = {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "content_filter": "refusal",
    }
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    BLOCKS: ClassVar[dict[str, str]] = {
        "reasoning": "thinking",
        "text": "text",
        "tool": "tool_use",
        "tool_args": "tool_use",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        if request.method != "POST" or not request.path.endswith("/messages"):
            return None
        body = request.json
        return body.get("stream") is True, str(body.get("model") or self.default_model)

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        )

    def headers(self, call: Call) -> dict[str, str]:
        return {"request-id": f"req_{call.id}"}

    def frames(self, call: Call) -> Iterator[Frame]:
        reply = call.reply
        message: dict[str, Any] = {
            "id": f"msg_{call.id}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        yield "meta", sse({"type": "message_start", "message": message}, "message_start")
        index, current = -1, None
        for kind, value in reply.items():
            block = self.BLOCKS[kind]
            if kind == "tool" or block != current:
                if current is not None:
                    yield "meta", self._block_stop(index, current)
                index, current = index + 1, block
                start = self._block_start(index, kind, value)
                if kind == "tool":
                    yield "item", start
                    continue
                yield "meta", start
                if index == 0:
                    yield "meta", sse({"type": "ping"}, "ping")
            yield (
                "item",
                sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": self._delta(kind, value),
                    },
                    "content_block_delta",
                ),
            )
        if current is not None:
            yield "meta", self._block_stop(index, current)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.finish_word(call), "stop_sequence": None},
            "usage": {"output_tokens": reply.completion_tokens},
        }
        yield "tail", sse(delta, "message_delta")
        yield "end", sse({"type": "message_stop"}, "message_stop")

    def _block_start(self, index: int, kind: str, value: Any) -> bytes:
        if kind == "tool":
            _, tool = value
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": tool.id,
                "name": tool.name,
                "input": {},
            }
        elif kind == "reasoning":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return sse(data, "content_block_start")

    def _delta(self, kind: str, value: Any) -> dict[str, Any]:
        if kind == "reasoning":
            return {"type": "thinking_delta", "thinking": value}
        if kind == "tool_args":
            return {"type": "input_json_delta", "partial_json": value[1]}
        return {"type": "text_delta", "text": value}

    def _block_stop(self, index: int, block: str) -> bytes:
        frame = b""
        if block == "thinking":
            signature = {"type": "signature_delta", "signature": "EqQBCgIYAhIMmock"}
            data = {"type": "content_block_delta", "index": index, "delta": signature}
            frame = sse(data, "content_block_delta")
        return frame + sse({"type": "content_block_stop", "index": index}, "content_block_stop")

    def answer(self, call: Call) -> dict[str, Any]:
        reply = call.reply
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            thinking = "".join(reply.reasoning)
            content.append({"type": "thinking", "thinking": thinking, "signature": "EqQBmock"})
        if reply.pieces():
            content.append({"type": "text", "text": "".join(reply.pieces())})
        content += [
            {"type": "tool_use", "id": t.id, "name": t.name, "input": t.object}
            for t in reply.tool_calls
        ]
        return {
            "id": f"msg_{call.id}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": self.finish_word(call),
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "output_tokens": reply.completion_tokens,
            },
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = self.ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def error_frame(self, call: Call) -> bytes:
        return sse(self.error_body(529, "Overloaded"), "error")

    def malformed_frame(self, call: Call) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'
