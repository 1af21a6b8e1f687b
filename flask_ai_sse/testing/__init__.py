"""The testing kit: a scripted fake provider, mock upstream servers, SSE parsing.

* :class:`FakeProvider` / :class:`FakeReply`: scripted answers, delays, stalls
  and failures, with no network (pass ``AISSE(app, provider=FakeProvider(...))``).
* :func:`parse_sse` / :func:`collect`: turn an SSE response into events.
* ``flask_ai_sse.testing.upstream``: mock OpenAI, Anthropic and Gemini servers.
"""

from __future__ import annotations

from ..providers.fake import FakeProvider, FakeReply, FakeToolCall
from .client import StreamResult, collect, parse_sse
from .upstream import AnthropicMock, GeminiMock, MockReply, MockToolCall, OpenAIMock

__all__ = [
    "AnthropicMock",
    "FakeProvider",
    "FakeReply",
    "FakeToolCall",
    "GeminiMock",
    "MockReply",
    "MockToolCall",
    "OpenAIMock",
    "StreamResult",
    "collect",
    "parse_sse",
]
