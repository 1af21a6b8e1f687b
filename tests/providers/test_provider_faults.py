"""Faults before and during the stream become the right typed errors; aborts close sockets.

Waits (``reader.done.wait(5)``, ``wait_for_open_streams``) end as soon as the state is
reached; their bounds are far above the milliseconds an abort or a close takes.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from flask_ai_sse.chunks import Chunk
from flask_ai_sse.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderStatusError,
    ProviderTimeout,
)
from flask_ai_sse.providers._transport import parse_retry_after
from flask_ai_sse.providers.http import HTTPProvider
from flask_ai_sse.testing.upstream import MockReply, MockUpstream

from .provider_kit import KEY, Reader, make_provider, request_for

# -- before the first byte: statuses and retries ------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "http_status"),
    [
        (400, "provider_refused", 502),
        (401, "provider_auth_error", 502),
        (404, "provider_refused", 502),
    ],
)
def test_client_errors_are_not_retried(
    mock: MockUpstream,
    provider: HTTPProvider,
    waits: list[float],
    status: int,
    error_type: str,
    http_status: int,
) -> None:
    mock.script(MockReply(status=status, error_message="model 'nope' does not exist"))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    error = caught.value
    assert (error.type, error.status, error.upstream_status) == (error_type, http_status, status)
    assert "model 'nope' does not exist" in error.message
    assert len(mock.requests) == 1 and waits == []


def test_server_errors_are_retried_then_raised(
    mock: MockUpstream, provider: HTTPProvider, waits: list[float]
) -> None:
    mock.script(MockReply(status=503))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    assert (caught.value.type, caught.value.status, caught.value.upstream_status) == (
        "provider_error",
        502,
        503,
    )
    assert len(mock.requests) == 3  # max_retries=2
    assert len(waits) == 2 and all(0 < w <= 0.05 for w in waits)


def test_failures_then_success(
    mock: MockUpstream, provider: HTTPProvider, waits: list[float]
) -> None:
    mock.script(MockReply(status=500), MockReply(status=429), MockReply(text="at last"))
    with provider.open(request_for(provider)) as stream:
        text = "".join(c.text for c in stream if c.kind == "text")
    assert text == "at last"
    assert len(mock.requests) == 3 and len(waits) == 2


def test_retry_after_is_honoured(mock: MockUpstream, waits: list[float]) -> None:
    provider = make_provider(mock, retry_max_wait=10)
    provider.transport.sleep = waits.append
    mock.script(MockReply(status=429, retry_after="3"), MockReply(status=503), "ok")
    with provider.open(request_for(provider)) as stream:
        assert "".join(c.text for c in stream if c.kind == "text") == "ok"
    assert waits[0] == 3.0
    assert 0.5 <= waits[1] <= 1.0  # second attempt: backoff step 1 s, equal jitter


def test_retry_after_beyond_the_limit_gives_up_at_once(
    mock: MockUpstream, provider: HTTPProvider, waits: list[float]
) -> None:
    mock.script(MockReply(status=429, retry_after="60"))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    error = caught.value
    assert (error.status, error.type, error.retry_after) == (429, "provider_rate_limited", 60.0)
    assert error.headers == {"Retry-After": "60"}
    assert len(mock.requests) == 1 and waits == []


def test_rate_limit_without_retry_after_keeps_429(
    mock: MockUpstream, provider: HTTPProvider, waits: list[float]
) -> None:
    mock.script(MockReply(status=429))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    assert caught.value.status == 429 and caught.value.headers == {"Retry-After": "1"}
    assert len(mock.requests) == 3


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"Retry-After": "0.25"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    parsed = parse_retry_after({"Retry-After": format_datetime(when, usegmt=True)})
    assert parsed is not None and 25 <= parsed <= 30
    past = format_datetime(datetime(2000, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after({"Retry-After": past}) == 0.0


def test_connection_refused(waits: list[float], mock: MockUpstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(mock, base_url=f"http://127.0.0.1:{port}{mock.prefix}")
    provider.transport.sleep = waits.append
    with pytest.raises(ProviderConnectionError) as caught:
        provider.open(request_for(provider))
    assert caught.value.status == 502 and caught.value.type == "provider_unavailable"
    assert isinstance(caught.value.__cause__, Exception)  # the requests error, for logs
    assert "127.0.0.1" not in caught.value.message
    assert len(waits) == 2


def test_connect_timeout_is_retried(openai_mock: MockUpstream) -> None:
    """A listener whose accept queue is full leaves SYNs unanswered: a real connect timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            provider = make_provider(
                openai_mock, base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.2
            )
            waits: list[float] = []
            provider.transport.sleep = waits.append
            with pytest.raises(ProviderTimeout, match="did not accept a connection") as caught:
                provider.open(request_for(provider))
            assert caught.value.status == 504 and len(waits) == 2
        finally:
            for filler in fillers:
                filler.close()


def test_no_headers_within_read_timeout(mock: MockUpstream, waits: list[float]) -> None:
    provider = make_provider(mock, read_timeout=0.3)
    provider.transport.sleep = waits.append
    mock.script(MockReply(headers_delay=10))
    with pytest.raises(ProviderTimeout) as caught:
        provider.open(request_for(provider))
    assert caught.value.status == 504
    assert len(mock.requests) == 1 and waits == []  # each try would cost another read_timeout


def test_key_never_in_errors(mock: MockUpstream, provider: HTTPProvider) -> None:
    echoed = f"Incorrect API key provided: {KEY}. Also sk-abc12**********wxyz and Bearer {KEY}."
    mock.script(MockReply(status=401, error_message=echoed))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    text = f"{caught.value.message} {caught.value!r} {caught.value.to_dict()}"
    assert KEY not in text and "sk-abc12" not in text
    assert "Incorrect API key provided" in caught.value.message
    assert KEY not in repr(provider) and KEY not in repr(provider.config)
    assert KEY not in repr(provider.transport)


def test_long_error_bodies_are_cut(mock: MockUpstream, provider: HTTPProvider) -> None:
    mock.script(MockReply(status=400, error_message="word " * 500))
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    assert len(caught.value.message) < 300 and "\n" not in caught.value.message


# -- after the first byte: mid-stream faults ---------------------------------------------------


def read_until_error(provider: HTTPProvider) -> tuple[list[Chunk], BaseException | None]:
    chunks: list[Chunk] = []
    try:
        for chunk in provider.open(request_for(provider)):
            chunks.append(chunk)
    except ProviderError as exc:
        return chunks, exc
    return chunks, None


@pytest.mark.parametrize(
    ("fault", "error_class", "error_type"),
    [
        ("reset", ProviderConnectionError, "provider_unavailable"),
        ("close", ProviderConnectionError, "provider_unavailable"),
        ("malformed", ProviderProtocolError, "provider_protocol_error"),
        ("no_terminator", ProviderProtocolError, "provider_protocol_error"),
        ("error_event", ProviderError, "provider_error"),
    ],
)
def test_mid_stream_faults(
    mock: MockUpstream, provider: HTTPProvider, fault: str, error_class: type, error_type: str
) -> None:
    mock.script(MockReply(text="one two three four", fault=fault, at=2))  # type: ignore[arg-type]
    chunks, error = read_until_error(provider)
    assert type(error) is error_class and error.type == error_type  # type: ignore[union-attr]
    expected = ["one ", "two "] if fault != "no_terminator" else ["one ", "two ", "three ", "four"]
    assert [c.text for c in chunks if c.kind == "text"] == expected
    assert len(mock.requests) == 1  # never retried once streaming
    assert KEY not in error.message  # type: ignore[union-attr]
    assert mock.wait_for_open_streams(0)


def test_mid_stream_read_idle_timeout(mock: MockUpstream) -> None:
    provider = make_provider(mock, read_timeout=0.3)
    mock.script(MockReply(text="a b c", stall=10, at=1))
    chunks, error = read_until_error(provider)
    assert isinstance(error, ProviderTimeout) and error.status == 504
    assert [c.text for c in chunks if c.kind == "text"] == ["a "]
    assert mock.wait_for_open_streams(0)  # the client closed its side on error


def test_total_timeout(mock: MockUpstream) -> None:
    provider = make_provider(mock, total_timeout=0.3)
    mock.script(MockReply(chunks=["x"] * 50, delay=0.02))
    chunks, error = read_until_error(provider)
    assert isinstance(error, ProviderTimeout) and "total timeout" in error.message
    assert 0 < len(chunks) < 50
    assert mock.wait_for_open_streams(0)


def test_stall_shorter_than_read_timeout_is_fine(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    mock.script(MockReply(text="slow but sure", stall=0.2, at=1))
    chunks, error = read_until_error(provider)
    assert error is None and "".join(c.text for c in chunks) == "slow but sure"


# -- closing and aborting ------------------------------------------------------------------------


def test_abort_from_another_thread_closes_the_upstream_socket(mock: MockUpstream) -> None:
    provider = make_provider(mock, read_timeout=30)  # only the abort can end the read in time
    mock.script(MockReply(text="a b c d", stall=30, at=2))
    stream = provider.open(request_for(provider))
    reader = Reader(stream).start()
    assert reader.wait_for_text(2)
    assert mock.open_streams == 1
    started = time.monotonic()
    stream.abort()  # the reader is blocked in a socket read: the stall lasts 30 s
    assert reader.done.wait(5)
    # The stall lasts 30 s and the read timeout is 30 s: under 2 s only the abort can explain,
    # and an abort takes milliseconds, so the bound is generous even on a loaded machine.
    assert time.monotonic() - started < 2
    assert reader.error is None  # stops quietly
    assert [c.text for c in reader.chunks if c.kind == "text"] == ["a ", "b "]
    assert stream.closed  # closed by the reading thread itself
    assert mock.wait_for_open_streams(0)
    assert mock.stats()["streams_client_closed"] == 1


def test_abort_during_a_stall_before_any_content(mock: MockUpstream) -> None:
    provider = make_provider(mock, read_timeout=30)
    mock.script(MockReply(text="never", stall=30, at=0))
    stream = provider.open(request_for(provider))
    reader = Reader(stream).start()
    assert mock.wait_for(lambda stats: stats["open_streams"] == 1)
    stream.abort()
    assert reader.done.wait(5) and reader.error is None
    assert not [c for c in reader.chunks if c.kind == "text"]
    assert mock.wait_for_open_streams(0)


def test_abort_after_the_end_leaves_the_pool_alone(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    stream = provider.open(request_for(provider))
    assert [c.kind for c in stream][-1] == "usage"
    stream.abort()  # the connection went back to the pool: it must not be shut down
    with provider.open(request_for(provider)) as again:
        assert list(again)[-1].kind == "usage"
    assert mock.stats()["connections_total"] == 1


def test_closing_early_closes_the_upstream_socket(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    mock.script(MockReply(text="a b c d", stall=30, at=1))
    with provider.open(request_for(provider)) as stream:
        iterator = iter(stream)
        assert next(iterator).text == "a "
        iterator.close()  # as a consumer breaking out of its loop
        assert stream.closed
    assert mock.wait_for_open_streams(0)


def test_close_without_iterating(mock: MockUpstream, provider: HTTPProvider) -> None:
    mock.script(MockReply(stall=30, at=0))
    stream = provider.open(request_for(provider))
    stream.close()
    assert mock.wait_for_open_streams(0)
