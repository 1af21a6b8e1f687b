"""An open stopped from another thread before the status is known: ``open_abortable``.

The open runs in a thread (as the engine's opener greenlet does); the abort comes from
the test. Each wait ends as soon as the state is reached; the bounds only stop a hang.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from flask_ai_sse.errors import ProviderConnectionError
from flask_ai_sse.providers.base import AbortSignal, ChunkStream
from flask_ai_sse.providers.fallback import FallbackProvider
from flask_ai_sse.testing.upstream import MockReply, MockUpstream

from .provider_kit import make_provider, request_for


class Opener(threading.Thread):
    def __init__(self, open_: Any) -> None:
        super().__init__(daemon=True)
        self._open = open_
        self.result: ChunkStream | BaseException | None = None
        self.ended_at = 0.0

    def run(self) -> None:
        try:
            self.result = self._open()
        except BaseException as exc:
            self.result = exc
        self.ended_at = time.monotonic()


def test_an_abort_while_the_status_is_awaited_closes_the_connection(mock: MockUpstream) -> None:
    provider = make_provider(mock, read_timeout=30.0)
    mock.script(MockReply(headers_delay=30))
    signal = AbortSignal()
    opener = Opener(lambda: provider.open_abortable(request_for(provider), signal))
    opener.start()
    assert mock.wait_for(lambda s: s["heads_pending"] == 1)
    aborted_at = time.monotonic()
    signal.abort()
    opener.join(5)
    assert isinstance(opener.result, ProviderConnectionError)
    assert "stopped" in opener.result.message
    assert opener.ended_at - aborted_at < 1.0
    assert mock.wait_for(lambda s: s["heads_abandoned"] == 1 and s["heads_pending"] == 0)
    provider.close()


def test_an_abort_ends_a_retry_backoff_at_once(mock: MockUpstream) -> None:
    provider = make_provider(mock, retry_max_wait=10.0)
    mock.script(MockReply(status=429, retry_after="8"), MockReply(text="never sent"))
    signal = AbortSignal()
    opener = Opener(lambda: provider.open_abortable(request_for(provider), signal))
    opener.start()
    assert mock.wait_for(lambda s: s["requests"] == 1)
    time.sleep(0.2)  # let the 429 be read and the 8 s backoff begin (not an assertion)
    aborted_at = time.monotonic()
    signal.abort()
    opener.join(5)
    assert isinstance(opener.result, ProviderConnectionError)
    assert opener.ended_at - aborted_at < 1.0
    assert mock.stats()["requests"] == 1
    provider.close()


def test_an_abort_before_the_open_sends_nothing(mock: MockUpstream) -> None:
    provider = make_provider(mock)
    signal = AbortSignal()
    signal.abort()
    with pytest.raises(ProviderConnectionError):
        provider.open_abortable(request_for(provider), signal)
    assert mock.stats()["requests"] == 0
    provider.close()


def test_an_aborted_open_tries_no_fallback(mock: MockUpstream) -> None:
    first, second = make_provider(mock, read_timeout=30.0), make_provider(mock)
    chain = FallbackProvider([first, second])
    mock.script(MockReply(headers_delay=30), MockReply(text="the fallback"))
    signal = AbortSignal()
    opener = Opener(lambda: chain.open_abortable(request_for(first), signal))
    opener.start()
    assert mock.wait_for(lambda s: s["heads_pending"] == 1)
    signal.abort()
    opener.join(5)
    assert isinstance(opener.result, ProviderConnectionError)
    assert mock.stats()["requests"] == 1
    chain.close()


def test_an_open_that_is_not_aborted_streams_as_usual(mock: MockUpstream) -> None:
    provider = make_provider(mock)
    mock.script(MockReply(text="all of it", headers_delay=0.2))
    with provider.open_abortable(request_for(provider), AbortSignal()) as stream:
        text = "".join(chunk.text for chunk in stream if chunk.kind == "text")
    assert text == "all of it"
    assert mock.wait_for_open_streams(0)
    provider.close()
