"""HTTP helpers of these tests: whole answers, and live SSE streams read in two steps."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import StreamResult, collect


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A whole (non-streamed) answer; the connection is closed, so servers stop fast."""
    return requests.request(method, url, timeout=(3, 10), **kwargs)


class LiveStream:
    """A streaming ``requests`` response, read once, through one byte iterator."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp = resp
        self._chunks: Iterator[bytes] = resp.iter_content(chunk_size=None)
        self._seen: list[bytes] = []
        self._start: dict[str, Any] | None = None

    def start(self) -> dict[str, Any]:
        """The ``start`` event's data (reads just far enough)."""
        if self._start is None:
            decoder = SSEDecoder()
            for chunk in self._chunks:
                self._seen.append(chunk)
                for event in decoder.feed(chunk):
                    if isinstance(event, ServerSentEvent) and event.event == "start":
                        self._start = json.loads(event.data)
                        return self._start
            raise AssertionError("the stream ended before its start event")
        return self._start

    @property
    def stream_id(self) -> str:
        return str(self.start()["stream_id"])

    def rest(self) -> StreamResult:
        """The whole stream, from its first byte to its end."""
        return collect(itertools.chain(list(self._seen), self._chunks))

    def close(self) -> None:
        self.resp.close()
