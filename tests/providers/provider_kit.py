"""Helpers for the provider tests: adapters pointed at mocks, requests, a threaded reader.

Waits are kept tiny through config (``retry_max_wait``), and every read has a
timeout (``read_timeout``), so a broken test fails fast instead of hanging.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask_ai_sse.chunks import AnswerBuilder, ChatRequest, Chunk
from flask_ai_sse.providers import ProviderConfig, create_provider
from flask_ai_sse.providers.base import ChunkStream
from flask_ai_sse.providers.http import HTTPProvider
from flask_ai_sse.testing.upstream import MockUpstream

KEY = "sk-test-0123456789abcdefSECRET"


def make_provider(mock: MockUpstream, name: str | None = None, **settings: Any) -> HTTPProvider:
    """An adapter for ``mock``'s format (or the preset ``name``), with fast test timeouts."""
    defaults: dict[str, Any] = {
        "api_key": KEY,
        "base_url": mock.base_url,
        "connect_timeout": 2.0,
        "read_timeout": 3.0,
        "total_timeout": 20.0,
        "max_retries": 2,
        "retry_max_wait": 0.05,
    }
    provider = create_provider(ProviderConfig(name=name or mock.name, **{**defaults, **settings}))
    assert isinstance(provider, HTTPProvider)
    return provider


def ask(prompt: str = "Hi", model: str = "", **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": prompt}], model=model, **kwargs)


def request_for(provider: HTTPProvider, prompt: str = "Hi", **kwargs: Any) -> ChatRequest:
    return ask(prompt, provider.model, **kwargs)


def fold(chunks: list[Chunk], provider: str = "", model: str = "") -> Any:
    builder = AnswerBuilder(model=model, provider=provider)
    for chunk in chunks:
        builder.add(chunk)
    return builder.answer()


@dataclass
class Reader:
    """Iterates a chunk stream in a thread, as the engine's producer does."""

    stream: ChunkStream
    chunks: list[Chunk] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    _texts: int = 0
    _seen: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Reader:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        try:
            for chunk in self.stream:
                with self._seen:
                    self.chunks.append(chunk)
                    self._seen.notify_all()
        except BaseException as exc:  # the test inspects it
            self.error = exc
        finally:
            self.done.set()
            with self._seen:
                self._seen.notify_all()

    def wait_for_text(self, count: int, timeout: float = 5.0) -> bool:
        with self._seen:
            return self._seen.wait_for(
                lambda: sum(c.kind == "text" for c in self.chunks) >= count or self.done.is_set(),
                timeout,
            )
