"""The OpenAI Chat Completions format: ``chat.completion.chunk`` events, ``[DONE]``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ._base import Call, Frame, MockReply, MockUpstream, sse
from ._server import RecordedRequest

CREATED = 1_700_000_000  # a fixed "created" timestamp keeps recorded streams reproducible


class OpenAIMock(MockUpstream):
    """``POST /v1/chat/completions``, streaming ``chat.completion.chunk`` events."""

    name = "openai"
    prefix = "/v1"
    default_model = "gpt-4o-mini"
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            return None
        body = request.json
        return body.get("stream") is True, str(body.get("model") or self.default_model)

    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"x-request-id": f"req_{call.id}", "openai-processing-ms": "1"}

    def usage(self, reply: MockReply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": len(reply.reasoning),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _base(self, call: Call, obj: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{call.id}",
            "object": obj,
            "created": CREATED,
            "model": call.model,
            "system_fingerprint": "fp_mock",
        }

    def frames(self, call: Call) -> Iterator[Frame]:
        options = call.request.json.get("stream_options") or {}
        with_usage = bool(options.get("include_usage"))
        base = self._base(call, "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice], **({"usage": None} if with_usage else {})})

        yield "meta", chunk({"role": "assistant", "content": "", "refusal": None})
        for kind, value in call.reply.items():
            if kind == "reasoning":
                yield "item", chunk({"reasoning_content": value})
            elif kind == "text":
                yield "item", chunk({"content": value})
            elif kind == "tool":
                index, tool = value
                function = {"name": tool.name, "arguments": ""}
                start = {"index": index, "id": tool.id, "type": "function", "function": function}
                yield "item", chunk({"tool_calls": [start]})
            else:
                index, piece = value
                yield (
                    "item",
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                )
        yield "tail", chunk({}, self.finish_word(call))
        if with_usage:
            yield "tail", sse({**base, "choices": [], "usage": self.usage(call.reply)})
        yield "end", b"data: [DONE]\n\n"

    def answer(self, call: Call) -> dict[str, Any]:
        reply = call.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.pieces()) or None,
            "refusal": None,
        }
        if reply.reasoning:
            message["reasoning_content"] = "".join(reply.reasoning)
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tool.id,
                    "type": "function",
                    "function": {"name": tool.name, "arguments": tool.text},
                }
                for tool in reply.tool_calls
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_word(call),
        }
        return {
            **self._base(call, "chat.completion"),
            "choices": [choice],
            "usage": self.usage(reply),
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = self.ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def error_frame(self, call: Call) -> bytes:
        return sse(self.error_body(500, "The server had an error while processing your request."))

    def malformed_frame(self, call: Call) -> bytes:
        return (
            b'data: {"id":"chatcmpl-' + call.id.encode() + b'","choices":[{"delta":{"content":\n\n'
        )
