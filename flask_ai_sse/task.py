"""A fluent builder over the extension's calls: ``ai.task().system(...).prompt(...).stream()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response

from .chunks import Answer, Message, Role

if TYPE_CHECKING:
    from .extension import AISSE, ChunkIterator


class Task:
    """Collects a request step by step; ends in ``stream()``, ``ask()`` or ``chunks()``."""

    def __init__(self, ai: AISSE) -> None:
        self._ai = ai
        self._messages: list[Message] = []
        self._kwargs: dict[str, Any] = {}
        self._options: dict[str, Any] = {}

    def system(self, text: str) -> Task:
        self._kwargs["system"] = text
        return self

    def message(self, role: Role, content: str | list[dict[str, Any]], **extra: Any) -> Task:
        """Add a message; ``extra``: ``tool_call_id`` (role ``tool``) or ``tool_calls``."""
        self._messages.append({"role": role, "content": content, **extra})  # type: ignore[typeddict-item]
        return self

    def prompt(self, text: str) -> Task:
        return self.message("user", text)

    def model(self, name: str) -> Task:
        self._kwargs["model"] = name
        return self

    def temperature(self, value: float) -> Task:
        self._kwargs["temperature"] = value
        return self

    def max_tokens(self, value: int) -> Task:
        self._kwargs["max_tokens"] = value
        return self

    def tools(self, *tools: Any, choice: str | None = None, max_steps: int | None = None) -> Task:
        """Offer tools: registered names, functions, or client-tool dicts (see ``ai.tool``)."""
        self._kwargs["tools"] = [*self._kwargs.get("tools", ()), *tools]
        if choice is not None:
            self._kwargs["tool_choice"] = choice
        if max_steps is not None:
            self._kwargs["max_steps"] = max_steps
        return self

    def tool_choice(self, choice: str) -> Task:
        self._kwargs["tool_choice"] = choice
        return self

    def max_steps(self, count: int) -> Task:
        self._kwargs["max_steps"] = count
        return self

    def schema(self, schema: dict[str, Any]) -> Task:
        """Ask for structured output following this JSON Schema."""
        self._kwargs["schema"] = schema
        return self

    def options(self, **options: Any) -> Task:
        self._options.update(options)
        return self

    def _call(self) -> dict[str, Any]:
        return {"messages": list(self._messages), **self._kwargs, **self._options}

    def stream(self, *, protocol: str | None = None) -> Response:
        """An SSE response, as :meth:`AISSE.ask_stream` (``protocol``: its wire format)."""
        return self._ai.ask_stream(**self._call(), protocol=protocol)

    def ask(self) -> Answer:
        return self._ai.ask(**self._call())

    def chunks(self) -> ChunkIterator:
        return self._ai.stream(**self._call())
