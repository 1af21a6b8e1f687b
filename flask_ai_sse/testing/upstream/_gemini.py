"""The Gemini ``generateContent`` format: whole responses as frames, CRLF-delimited."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from ._base import Call, Frame, MockReply, MockUpstream, sse
from ._server import RecordedRequest


class GeminiMock(MockUpstream):
    """``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (and ``:generateContent``).

    Frames end with CRLF CRLF, as Google's servers send them; each is a whole
    ``GenerateContentResponse``; the last carries ``finishReason``; the body
    just ends. Tool calls arrive whole (Gemini does not stream arguments).
    """

    name = "gemini"
    prefix = "/v1beta"
    default_model = "gemini-2.5-flash"
    FINISH: ClassVar[dict[str, str]] = {
        "stop": "STOP",
        "length": "MAX_TOKENS",
        "tool_calls": "STOP",
        "content_filter": "SAFETY",
    }
    STATUSES: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        prefix = f"{self.prefix}/models/"
        if request.method != "POST" or not request.path.startswith(prefix):
            return None
        model, _, method = request.path[len(prefix) :].partition(":")
        request.json  # noqa: B018 - a body that is not JSON is a 400, as upstream
        if method == "streamGenerateContent" and request.query.get("alt") == "sse":
            return True, model
        if method == "generateContent":
            return False, model
        return None

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (request.headers.get("x-goog-api-key"), request.query.get("key"))

    def _response(
        self, call: Call, parts: list[dict[str, Any]], out: int, finish: bool
    ) -> dict[str, Any]:
        """A ``GenerateContentResponse`` with ``parts``, after ``out`` output tokens."""
        reply = call.reply
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = self.finish_word(call)
        thoughts = min(out, len(reply.reasoning))
        usage = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": out - thoughts,
            "totalTokenCount": reply.prompt_tokens + out,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": f"resp_{call.id}",
        }

    def _parts(self, reply: MockReply) -> Iterator[dict[str, Any]]:
        for kind, value in reply.items():
            if kind == "reasoning":
                yield {"text": value, "thought": True}
            elif kind == "text":
                yield {"text": value}
            elif kind == "tool":
                _, tool = value
                yield {"functionCall": {"name": tool.name, "args": tool.object}}

    def frames(self, call: Call) -> Iterator[Frame]:
        for out, part in enumerate(self._parts(call.reply), 1):
            yield "item", sse(self._response(call, [part], out, False), newline="\r\n")
        out = call.reply.completion_tokens
        yield "end", sse(self._response(call, [{"text": ""}], out, True), newline="\r\n")

    def answer(self, call: Call) -> dict[str, Any]:
        reply = call.reply
        return self._response(call, list(self._parts(reply)), reply.completion_tokens, True)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": self.STATUSES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN"),
            }
        }

    def error_frame(self, call: Call) -> bytes:
        body = self.error_body(503, "The model is overloaded. Please try again later.")
        return sse(body, newline="\r\n")

    def malformed_frame(self, call: Call) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "oops\r\n\r\n'
