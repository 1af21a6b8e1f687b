"""OpenAI chat completions, and every server that speaks them (the presets below).

Streaming: ``data:`` events of ``chat.completion.chunk`` objects, tool-call
arguments in pieces joined by ``index``, ``finish_reason`` on the last content
chunk, then (asked for with ``stream_options.include_usage``) a usage chunk
with ``choices: []``, then ``data: [DONE]``. An ``{"error": ...}`` payload in
the stream is an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from .._parts import data_url
from ..chunks import ChatRequest, Chunk, Message, ToolCallDelta, Usage
from ..sse import ServerSentEvent
from .http import HTTPProvider, StreamParser, with_options

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _usage(data: dict[str, Any]) -> Usage:
    prompt = int(data.get("prompt_tokens") or 0)
    completion = int(data.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(data.get("total_tokens") or prompt + completion))


class OpenAIParser(StreamParser):
    terminator = "data: [DONE]"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.usage: Usage | None = None

    def feed(self, event: ServerSentEvent) -> Iterator[Chunk]:
        if event.data.strip() == "[DONE]":
            self.finished = True
            if self.usage is not None:
                yield Chunk("usage", usage=self.usage)
            return
        data = self.json(event.data)
        if data.get("error"):
            raise self.upstream_error(data["error"])
        if data.get("object") == "error":  # vLLM's shape
            raise self.upstream_error(data)
        self.model = data.get("model") or self.model
        if data.get("usage"):  # some servers send it on every chunk: keep the last
            self.usage = _usage(data["usage"])
        for choice in data.get("choices") or ():
            if choice.get("index", 0) == 0:
                yield from self.choice(choice.get("delta") or {}, choice.get("finish_reason"))

    def answer(self, data: dict[str, Any]) -> Iterator[Chunk]:
        self.model = data.get("model") or self.model
        choice = data["choices"][0]
        yield from self.choice(choice["message"], choice.get("finish_reason"))
        if data.get("usage"):
            yield Chunk("usage", usage=_usage(data["usage"]))

    def choice(self, delta: dict[str, Any], finish_reason: str | None) -> Iterator[Chunk]:
        """One choice's delta (or, for ``complete()``, its whole message) as chunks."""
        # DeepSeek and vLLM name it reasoning_content, OpenRouter reasoning.
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            yield Chunk("reasoning", reasoning)
        for key in ("content", "refusal"):
            if delta.get(key):
                yield Chunk("text", delta[key])
        for position, call in enumerate(delta.get("tool_calls") or ()):
            function = call.get("function") or {}
            yield Chunk(
                "tool_call",
                tool_call=ToolCallDelta(
                    index=call.get("index", position),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                ),
            )
        if delta.get("function_call"):  # the legacy single-function form
            function = delta["function_call"]
            yield Chunk(
                "tool_call",
                tool_call=ToolCallDelta(
                    index=0, name=function.get("name"), arguments=function.get("arguments") or ""
                ),
            )
        if finish_reason:
            yield self.finish(FINISH_REASONS.get(finish_reason, "stop"), finish_reason)


def message(m: Message) -> dict[str, Any]:
    """A message in Chat Completions form: ``image_url`` parts, ``tool`` messages,
    assistant ``tool_calls`` with their arguments as a JSON string."""
    content = m["content"]
    out: dict[str, Any] = {"role": m["role"]}
    if isinstance(content, str):
        out["content"] = content
    else:
        out["content"] = [
            {"type": "text", "text": p["text"]}
            if p["type"] == "text"
            else {"type": "image_url", "image_url": {"url": data_url(p)}}
            for p in content
        ]
    if m["role"] == "tool":
        out["tool_call_id"] = m.get("tool_call_id", "")
    if m.get("tool_calls"):
        out["content"] = out["content"] or None
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for call in m.get("tool_calls", ())
        ]
    return out


def add_tools(body: dict[str, Any], request: ChatRequest) -> None:
    """Tools, the choice among them and structured output, as Chat Completions names them."""
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice in ("auto", "none", "required"):
        body["tool_choice"] = choice
    elif choice:
        body["tool_choice"] = {"type": "function", "function": {"name": choice}}
    if request.schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.schema, "strict": True},
        }


class OpenAICompatibleProvider(HTTPProvider):
    """Any server with the OpenAI chat completions API; the presets only change defaults."""

    #: The body field for the answer's length limit.
    max_tokens_field: ClassVar[str] = "max_tokens"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def body(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [message(m) for m in request.messages]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        add_tools(body, request)
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        return body

    def stream_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        body = self.body(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return f"{self.base_url}/chat/completions", with_options(body, request.options)

    def complete_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        body = self.body(request)
        body["stream"] = False
        return f"{self.base_url}/chat/completions", with_options(body, request.options)

    def parser(self, request: ChatRequest) -> OpenAIParser:
        return OpenAIParser(provider=self.name, model=request.model, scrub=self.transport.scrub)


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    default_model = "gpt-4o-mini"
    default_base_url = "https://api.openai.com/v1"
    key_env = ("OPENAI_API_KEY",)
    # OpenAI deprecated max_tokens for it; its reasoning models refuse max_tokens.
    max_tokens_field = "max_completion_tokens"


class GroqProvider(OpenAICompatibleProvider):
    name = "groq"
    default_model = "llama-3.3-70b-versatile"
    default_base_url = "https://api.groq.com/openai/v1"
    key_env = ("GROQ_API_KEY",)


class MistralProvider(OpenAICompatibleProvider):
    name = "mistral"
    default_model = "mistral-small-latest"
    default_base_url = "https://api.mistral.ai/v1"
    key_env = ("MISTRAL_API_KEY",)


class OllamaProvider(OpenAICompatibleProvider):
    """A local Ollama server: no key unless one is set (e.g. for ollama.com)."""

    name = "ollama"
    default_model = "llama3.2"
    default_base_url = "http://localhost:11434/v1"
    key_env = ("OLLAMA_API_KEY",)
    key_required = False


class OpenRouterProvider(OpenAICompatibleProvider):
    name = "openrouter"
    default_model = "openai/gpt-4o-mini"
    default_base_url = "https://openrouter.ai/api/v1"
    key_env = ("OPENROUTER_API_KEY",)


class VLLMProvider(OpenAICompatibleProvider):
    """A local vLLM server; the model must be the one it serves (``vllm serve <model>``)."""

    name = "vllm"
    default_model = "Qwen/Qwen2.5-1.5B-Instruct"
    default_base_url = "http://localhost:8000/v1"
    key_env = ("VLLM_API_KEY",)
    key_required = False


class DeepSeekProvider(OpenAICompatibleProvider):
    name = "deepseek"
    default_model = "deepseek-chat"
    default_base_url = "https://api.deepseek.com/v1"
    key_env = ("DEEPSEEK_API_KEY",)


class TogetherProvider(OpenAICompatibleProvider):
    name = "together"
    default_model = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    default_base_url = "https://api.together.ai/v1"
    key_env = ("TOGETHER_API_KEY",)


PRESETS: tuple[type[OpenAICompatibleProvider], ...] = (
    GroqProvider,
    MistralProvider,
    OllamaProvider,
    OpenRouterProvider,
    VLLMProvider,
    DeepSeekProvider,
    TogetherProvider,
)
