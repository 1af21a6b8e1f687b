"""Draining in-process: ``engine.shutdown.drain`` on one app's engine, and a pending open.

The drain is given the engine to drain (``engines=[...]``) so that the other apps of
this test process keep serving. Waits (``done.wait(5)``) only stop a hang.
"""

from __future__ import annotations

import json
import threading
import time

from flask_ai_sse import AISSE
from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.engine.opening import PendingChunkStream, open_within
from flask_ai_sse.engine.shutdown import drain
from flask_ai_sse.errors import ProviderError
from flask_ai_sse.providers.base import AbortSignal, ChunkStream
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

ASK = ChatRequest(messages=[{"role": "user", "content": "x"}], model="m")


def test_a_drain_waits_for_generations_that_finish_in_time(make_app):
    provider = FakeProvider(script=[FakeReply(text="a b c d e f", delay=0.05)])
    app = make_app(AISSE(provider=provider), AI_SSE_SHUTDOWN_TIMEOUT=5)
    engine = app.extensions["ai_sse"].engine
    with app.test_request_context():
        generation = app.extensions["ai_sse"].extension.start_generation(ASK)
    assert drain(10.0, engines=[engine]) is True
    assert generation.status == "completed"
    assert "".join(generation.answer.text_parts) == "a b c d e f"


def test_a_drain_ends_what_cannot_finish_and_refuses_new_streams(make_app):
    provider = FakeProvider(script=[FakeReply(text="word " * 200, delay=0.05)])
    app = make_app(AISSE(provider=provider), AI_SSE_SHUTDOWN_TIMEOUT=0.2)
    engine = app.extensions["ai_sse"].engine
    client = app.test_client()
    response = client.get("/ai/stream?prompt=x", buffered=False)
    body = iter(response.response)
    first = next(body)
    drained: list[bool] = []
    thread = threading.Thread(target=lambda: drained.append(drain(10.0, engines=[engine])))
    thread.start()
    refused = client.get("/ai/stream?prompt=y")
    assert refused.status_code == 503
    assert refused.json["error"]["type"] == "shutting_down"
    assert refused.headers["Retry-After"] == "1"
    result = collect(first + b"".join(body))
    thread.join(5)
    assert drained == [False]
    error = result.named("error")[0]
    assert json.loads(error.data)["error"]["type"] == "shutting_down"
    assert result.ended and 0 < len(result.text) < len("word " * 200)


def test_the_budget_is_capped_by_the_servers_limit(make_app):
    provider = FakeProvider(script=[FakeReply(text="word " * 200, delay=0.05)])
    app = make_app(AISSE(provider=provider), AI_SSE_SHUTDOWN_TIMEOUT=60)
    with app.test_request_context():
        generation = app.extensions["ai_sse"].extension.start_generation(ASK)
    began = time.monotonic()
    assert drain(0.3, engines=[app.extensions["ai_sse"].engine]) is False
    assert time.monotonic() - began < 5  # 0.3 s and the end's writing, not 60 s
    assert generation.status == "failed" and generation.error.type == "shutting_down"


class SlowOpen(FakeProvider):
    """A provider whose open takes ``seconds`` (or until aborted)."""

    def __init__(self, seconds: float, *, heeds_abort: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds
        self.heeds_abort = heeds_abort
        self.closed: list[ChunkStream] = []

    def open_abortable(self, request: ChatRequest, abort: AbortSignal) -> ChunkStream:
        if not self.heeds_abort:
            time.sleep(self.seconds)  # like an adapter whose open cannot be stopped
        elif abort.wait(self.seconds):
            raise ProviderError("stopped")
        stream = self.open(request)
        original = stream.close

        def close() -> None:
            self.closed.append(stream)
            original()

        stream.close = close  # type: ignore[method-assign]
        return stream


def within(provider, seconds):
    return open_within(
        lambda abort: provider.open_abortable(ASK, abort), seconds, provider="fake", model="m"
    )


def test_an_open_within_the_deadline_returns_its_stream_or_raises():
    fast = SlowOpen(0.0, script=["hi"], delay=0)
    assert not isinstance(within(fast, 1.0), PendingChunkStream)
    failing = FakeProvider(script=[FakeReply(fail_before=ProviderError("no"))])
    try:
        within(failing, 1.0)
    except ProviderError as exc:
        assert exc.message == "no"
    else:
        raise AssertionError("the fast failure was not raised")


def test_a_pending_stream_reads_the_late_open_and_names_who_answered():
    provider = SlowOpen(0.3, script=[FakeReply(text="late text", model="late-model")], delay=0)
    stream = within(provider, 0.05)
    assert isinstance(stream, PendingChunkStream)
    assert (stream.provider, stream.model) == ("fake", "m")
    text = "".join(chunk.text for chunk in stream if chunk.kind == "text")
    assert text == "late text"
    assert stream.model == "late-model"


def test_a_pending_stream_closed_before_the_open_returns_closes_what_it_opens():
    provider = SlowOpen(0.3, heeds_abort=False, script=["never read"], delay=0)
    stream = within(provider, 0.05)
    stream.close()  # e.g. the store failed as the generation started
    deadline = time.monotonic() + 5
    while not provider.closed and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the opener thread, not an assertion
    assert len(provider.closed) == 1


def test_a_pending_stream_aborted_while_waiting_ends_quietly():
    provider = SlowOpen(30.0, script=["never"], delay=0)
    stream = within(provider, 0.05)
    threading.Timer(0.1, stream.abort).start()
    began = time.monotonic()
    assert list(stream) == []
    assert time.monotonic() - began < 2
