"""Google Gemini API (``generativelanguage.googleapis.com``).

Streaming: ``POST {base}/models/{model}:streamGenerateContent?alt=sse``. Every
``data:`` event is a whole ``GenerateContentResponse`` holding the next parts;
there is no ``[DONE]``: the body's end ends the answer, and a body that ends
before any ``finishReason`` was cut short. Roles are ``user`` and ``model``; the
system prompt is ``systemInstruction``; limits go in ``generationConfig``.
"""

from __future__ import annotations

import json
import mimetypes
import secrets
from collections.abc import Iterator
from typing import Any

from ..chunks import ChatRequest, Chunk, Message, ToolCallDelta, Usage
from ..errors import ProviderProtocolError
from ..sse import ServerSentEvent
from .http import HTTPProvider, StreamParser, split_system, with_options

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}


class GeminiParser(StreamParser):
    terminator = "a finishReason"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.tools = 0

    def feed(self, event: ServerSentEvent) -> Iterator[Chunk]:
        yield from self.response(self.json(event.data))

    def response(self, data: dict[str, Any]) -> Iterator[Chunk]:
        """One ``GenerateContentResponse``: a stream frame, or the whole non-streamed answer."""
        if data.get("error"):
            raise self.upstream_error(data["error"])
        self.model = data.get("modelVersion") or self.model
        if data.get("usageMetadata"):
            meta = data["usageMetadata"]
            prompt = int(meta.get("promptTokenCount") or 0)
            completion = int(meta.get("candidatesTokenCount") or 0) + int(
                meta.get("thoughtsTokenCount") or 0
            )
            self.usage = Usage(prompt, completion, int(meta.get("totalTokenCount") or 0))
        candidates = data.get("candidates") or ()
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked and not candidates:
            self.finish_reason = blocked
        for candidate in candidates[:1]:
            for part in (candidate.get("content") or {}).get("parts") or ():
                if part.get("text"):
                    yield Chunk("reasoning" if part.get("thought") else "text", part["text"])
                elif part.get("functionCall"):
                    call = part["functionCall"]
                    yield Chunk(
                        "tool_call",
                        tool_call=ToolCallDelta(
                            index=self.tools,
                            # Gemini often sends no id; one is made so results can name it.
                            id=call.get("id") or f"call_{secrets.token_hex(12)}",
                            name=call.get("name"),
                            arguments=json.dumps(call.get("args") or {}),
                        ),
                    )
                    self.tools += 1
            self.finish_reason = candidate.get("finishReason") or self.finish_reason

    def end(self) -> Iterator[Chunk]:
        """End of body is Gemini's terminator, provided a finishReason came first."""
        if self.finish_reason is None:
            raise ProviderProtocolError(
                f"The {self.provider} stream ended before any finishReason.",
                provider=self.provider,
            )
        raw = self.finish_reason
        reason = "tool_calls" if raw == "STOP" and self.tools else FINISH_REASONS.get(raw, "stop")
        yield self.finish(reason, raw)
        if self.usage is not None:
            yield Chunk("usage", usage=self.usage)

    def answer(self, data: dict[str, Any]) -> Iterator[Chunk]:
        yield from self.response(data)
        yield from self.end()


def _parts(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if part["type"] == "text":
            parts.append({"text": part["text"]})
        elif "data" in part:
            parts.append({"inlineData": {"mimeType": part["media_type"], "data": part["data"]}})
        else:
            mime = part.get("media_type") or mimetypes.guess_type(part["url"])[0] or "image/jpeg"
            parts.append({"fileData": {"mimeType": mime, "fileUri": part["url"]}})
    return parts


def _response(content: str | list[dict[str, Any]]) -> dict[str, Any]:
    """A tool's result as ``functionResponse.response``, which must be an object."""
    text = content if isinstance(content, str) else json.dumps(content)
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, dict) else {"result": value}


def contents(history: list[Message]) -> list[dict[str, Any]]:
    """Messages as ``contents``: ``inlineData``/``fileData`` parts, ``functionCall`` parts in
    the model's turn, and one user turn of ``functionResponse`` parts per run of tool messages
    (a response names its function, found from the call it answers)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in history:
        if m["role"] == "tool":
            call_id = m.get("tool_call_id", "")
            part = {
                "functionResponse": {
                    "id": call_id,
                    "name": names.get(call_id, call_id),
                    "response": _response(m["content"]),
                }
            }
            if out and out[-1].get("tool_results"):
                out[-1]["parts"].append(part)
            else:
                out.append({"role": "user", "parts": [part], "tool_results": True})
            continue
        parts = _parts(m["content"])
        for call in m.get("tool_calls", ()):
            names[call["id"]] = call["name"]
            parts.append(
                {
                    "functionCall": {
                        "id": call["id"],
                        "name": call["name"],
                        "args": call["arguments"],
                    }
                }
            )
        out.append({"role": "model" if m["role"] == "assistant" else "user", "parts": parts})
    for content in out:
        content.pop("tool_results", None)
    return out


def add_tools(body: dict[str, Any], config: dict[str, Any], request: ChatRequest) -> None:
    """Function declarations (their JSON Schema as ``parametersJsonSchema``), the calling
    mode, and structured output (``responseMimeType`` with ``responseJsonSchema``, which
    takes a JSON Schema as it is, where ``responseSchema`` takes an OpenAPI subset)."""
    if request.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t.name,
                        "description": t.description,
                        "parametersJsonSchema": t.parameters,
                    }
                    for t in request.tools
                ]
            }
        ]
    choice = request.tool_choice
    if choice:
        modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
        calling: dict[str, Any] = {"mode": modes.get(choice, "ANY")}
        if choice not in modes:
            calling["allowedFunctionNames"] = [choice]
        body["toolConfig"] = {"functionCallingConfig": calling}
    if request.schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = request.schema


class GeminiProvider(HTTPProvider):
    name = "gemini"
    default_model = "gemini-2.5-flash"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-goog-api-key": api_key or ""}

    def url(self, request: ChatRequest, method: str) -> str:
        model = request.model.removeprefix("models/")
        return f"{self.base_url}/models/{model}:{method}"

    def body(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = split_system(request)
        body: dict[str, Any] = {"contents": contents(messages)}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        add_tools(body, config, request)
        if config:
            body["generationConfig"] = config
        return with_options(body, request.options)

    def stream_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        return self.url(request, "streamGenerateContent") + "?alt=sse", self.body(request)

    def complete_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        return self.url(request, "generateContent"), self.body(request)

    def parser(self, request: ChatRequest) -> GeminiParser:
        return GeminiParser(provider=self.name, model=request.model, scrub=self.transport.scrub)
