"""Mock upstream servers that speak the OpenAI, Anthropic and Gemini streaming APIs.

A test starts one on a free loopback port, scripts its answers and faults, then
reads what it received and how many streams it still holds open::

    with OpenAIMock(api_key="test-key") as mock:
        mock.script(MockReply(status=429, retry_after="1"), MockReply(text="Hello!"))
        ...  # point a provider or SDK at mock.base_url
        assert mock.requests[-1].json["model"] == "gpt-4o-mini"
        assert mock.wait_for_open_streams(0)

Each speaks its format as the real API does: status line and headers, event
names, JSON shapes, usage, terminators, chunked transfer encoding and
keep-alive (so client connection pools are really exercised). Replies are
consumed in order; the last one repeats. The servers are raw sockets, so faults
are real TCP events: an RST (``SO_LINGER`` 0), a FIN in the middle of a chunked
body, a stall that notices the client leaving.

For benchmarks the package runs alone under gevent, serving thousands of
concurrent streams, with its counters at ``GET /_mock/stats``::

    python -m flask_ai_sse.testing.upstream --format openai --port 9100 --tokens 200 --delay-ms 20

The package's modules: ``_server`` (raw-socket HTTP/1.1), ``_base`` (scripts, faults,
records, counters), one module per wire format, ``__main__`` (the command line).
"""

from __future__ import annotations

from ._anthropic import AnthropicMock
from ._base import MockReply, MockToolCall, MockUpstream
from ._gemini import GeminiMock
from ._openai import OpenAIMock
from ._server import RecordedRequest

#: Each mock by its ``--format`` name.
FORMATS: dict[str, type[MockUpstream]] = {
    mock.name: mock for mock in (OpenAIMock, AnthropicMock, GeminiMock)
}

__all__ = [
    "FORMATS",
    "AnthropicMock",
    "GeminiMock",
    "MockReply",
    "MockToolCall",
    "MockUpstream",
    "OpenAIMock",
    "RecordedRequest",
]
