"""The testing kit: a scripted fake provider, mock upstream servers, SSE parsing.

* :class:`FakeProvider` / :class:`FakeReply`: scripted answers, delays, stalls
  and failures, with no network (pass ``AISSE(app, provider=FakeProvider(...))``).
* :func:`parse_sse` / :func:`collect`: turn an SSE response into events.
* ``flask_ai_sse.testing.upstream``: mock OpenAI, Anthropic and Gemini servers.
"""

from __future__ import annotations

from typing import Any

from ..providers.fake import FakeProvider, FakeReply
from .client import StreamResult, collect, parse_sse

# The mock upstreams load on first use: ``python -m flask_ai_sse.testing.upstream``
# must not find that module imported already (runpy warns, and runs a second copy).
_UPSTREAM = ("AnthropicMock", "GeminiMock", "MockReply", "MockToolCall", "OpenAIMock")


def __getattr__(name: str) -> Any:
    if name in _UPSTREAM:
        from . import upstream

        return getattr(upstream, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnthropicMock",
    "FakeProvider",
    "FakeReply",
    "GeminiMock",
    "MockReply",
    "MockToolCall",
    "OpenAIMock",
    "StreamResult",
    "collect",
    "parse_sse",
]
