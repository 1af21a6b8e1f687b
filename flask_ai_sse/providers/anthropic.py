"""Anthropic messages API.

Streaming: named events. ``message_start`` (model, input usage), then per
content block ``content_block_start``/``content_block_delta``/``content_block_stop``
(``text_delta``, ``thinking_delta``, ``input_json_delta`` for tool input),
``message_delta`` (``stop_reason``; its ``usage.output_tokens`` is a running
total), and ``message_stop`` to end. ``ping`` may come anywhere, ``error`` may
come after the 200, and event types this module does not know are ignored, as
Anthropic asks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..chunks import ChatRequest, Chunk, Message, ToolCallDelta, Usage
from ..sse import ServerSentEvent
from .http import HTTPProvider, StreamParser, split_system, with_options

API_VERSION = "2023-06-01"
#: The API requires max_tokens; this is sent when the request sets none.
DEFAULT_MAX_TOKENS = 1024

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _input_tokens(usage: dict[str, Any]) -> int:
    """Anthropic counts cached input apart; the prompt is all of it."""
    return sum(
        int(usage.get(key) or 0)
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


class AnthropicParser(StreamParser):
    terminator = "message_stop"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_tokens = 0
        self.output_tokens = 0
        #: content block index -> tool call index (tool calls count from 0).
        self.tools: dict[int, int] = {}

    def feed(self, event: ServerSentEvent) -> Iterator[Chunk]:
        if event.event == "ping":
            return
        data = self.json(event.data)
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data["message"]
            self.model = message.get("model") or self.model
            usage = message.get("usage") or {}
            self.input_tokens = _input_tokens(usage)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "content_block_start":
            yield from self.block(data["index"], data["content_block"])
        elif kind == "content_block_delta":
            yield from self.delta(data["index"], data["delta"])
        elif kind == "message_delta":
            usage = data.get("usage") or {}
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
            # Newer API versions repeat the input counts here; never let them shrink.
            self.input_tokens = max(self.input_tokens, _input_tokens(usage))
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason:
                yield self.finish(FINISH_REASONS.get(stop_reason, "stop"), stop_reason)
        elif kind == "message_stop":
            self.finished = True
            yield Chunk("usage", usage=self.usage())
        elif kind == "error":
            raise self.upstream_error(data.get("error"))

    def block(self, index: int, block: dict[str, Any]) -> Iterator[Chunk]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            yield Chunk("text", block["text"])
        elif kind == "thinking" and block.get("thinking"):
            yield Chunk("reasoning", block["thinking"])
        elif kind == "tool_use":
            self.tools[index] = len(self.tools)
            # A streamed tool_use starts with input {} and sends it as input_json_delta;
            # a whole one (complete()) carries it here.
            arguments = json.dumps(block["input"]) if block.get("input") else ""
            yield Chunk(
                "tool_call",
                tool_call=ToolCallDelta(
                    index=self.tools[index],
                    id=block.get("id"),
                    name=block.get("name"),
                    arguments=arguments,
                ),
            )

    def delta(self, index: int, delta: dict[str, Any]) -> Iterator[Chunk]:
        kind = delta.get("type")
        if kind == "text_delta":
            yield Chunk("text", delta["text"])
        elif kind == "thinking_delta":
            yield Chunk("reasoning", delta["thinking"])
        elif kind == "input_json_delta" and index in self.tools:
            yield Chunk(
                "tool_call",
                tool_call=ToolCallDelta(index=self.tools[index], arguments=delta["partial_json"]),
            )

    def usage(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, self.input_tokens + self.output_tokens)

    def answer(self, data: dict[str, Any]) -> Iterator[Chunk]:
        self.model = data.get("model") or self.model
        for index, block in enumerate(data.get("content") or ()):
            yield from self.block(index, block)
        stop_reason = data.get("stop_reason")
        if stop_reason:
            yield self.finish(FINISH_REASONS.get(stop_reason, "stop"), stop_reason)
        usage = data.get("usage") or {}
        self.input_tokens = _input_tokens(usage)
        self.output_tokens = int(usage.get("output_tokens") or 0)
        yield Chunk("usage", usage=self.usage())


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if part["type"] == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif "url" in part:
            blocks.append({"type": "image", "source": {"type": "url", "url": part["url"]}})
        else:
            source = {"type": "base64", "media_type": part["media_type"], "data": part["data"]}
            blocks.append({"type": "image", "source": source})
    return blocks


def _is_error(content: str | list[dict[str, Any]]) -> bool:
    """A tool result that reports a failure (``{"error": {...}}``, as the step loop sends)."""
    if not isinstance(content, str) or not content.startswith('{"error"'):
        return False
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and set(value) == {"error"}


def to_messages(history: list[Message]) -> list[dict[str, Any]]:
    """Messages as content blocks: ``image`` blocks, ``tool_use`` in the assistant's turn,
    and ``tool_result`` blocks in one user turn per run of tool messages (as the API asks)."""
    out: list[dict[str, Any]] = []
    for m in history:
        if m["role"] == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": _blocks(m["content"]) or "",
            }
            if _is_error(m["content"]):
                result["is_error"] = True
            previous = out[-1] if out else None
            if previous and previous["role"] == "user" and previous.get("tool_results"):
                previous["content"].append(result)
            else:
                out.append({"role": "user", "content": [result], "tool_results": True})
            continue
        if m["role"] == "assistant" and m.get("tool_calls"):
            blocks = _blocks(m["content"])
            blocks += [
                {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                for c in m.get("tool_calls", ())
            ]
            out.append({"role": "assistant", "content": blocks})
        elif isinstance(m["content"], str):
            out.append({"role": m["role"], "content": m["content"]})
        else:
            out.append({"role": m["role"], "content": _blocks(m["content"])})
    for message in out:
        message.pop("tool_results", None)
    return out


TOOL_CHOICE = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    """Tools (``input_schema``), ``tool_choice``, and structured output (``output_config``)."""
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice:
        body["tool_choice"] = TOOL_CHOICE.get(choice) or {"type": "tool", "name": choice}
    if request.schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": request.schema}}


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    default_model = "claude-sonnet-4-6"
    default_base_url = "https://api.anthropic.com/v1"
    key_env = ("ANTHROPIC_API_KEY",)

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"x-api-key": api_key or "", "anthropic-version": API_VERSION}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        system, messages = split_system(request)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": to_messages(messages),
        }
        add_tools(body, request)
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def stream_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        body = {**self.body(request), "stream": True}
        return f"{self.base_url}/messages", with_options(body, request.options)

    def complete_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        return f"{self.base_url}/messages", with_options(self.body(request), request.options)

    def parser(self, request: ChatRequest) -> AnthropicParser:
        return AnthropicParser(provider=self.name, model=request.model, scrub=self.transport.scrub)
