"""A provider slow to send its status line: the response starts after AI_SSE_KEEPALIVE.

A real gunicorn gevent server streams from the OpenAI mock upstream (in this process),
whose ``headers_delay`` holds the status line back; what the upstream saw is read from
the mock's side (``heads_pending``, ``heads_abandoned``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock

from ..helpers import Server, open_stream

pytestmark = pytest.mark.server

KEY = "sk-test-head-deadline"
KEEPALIVE = 0.3
GRACE = 0.3
CONFIG = {
    "AI_SSE_PROVIDER": "openai",
    "AI_SSE_API_KEY": KEY,
    "AI_SSE_KEEPALIVE": KEEPALIVE,
    "AI_SSE_DISCONNECT_GRACE": GRACE,
    "AI_SSE_MAX_RETRIES": 1,
    "AI_SSE_RETRY_MAX_WAIT": 5.0,
}


@pytest.fixture(scope="module")
def mock() -> Iterator[OpenAIMock]:
    with OpenAIMock(api_key=KEY) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(module_gunicorn: Any, mock: OpenAIMock) -> Server:
    return module_gunicorn({**CONFIG, "AI_SSE_BASE_URL": mock.base_url})  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def upstream_idle(mock: OpenAIMock) -> Iterator[None]:
    yield
    # Generous: the worker ends its upstream request within milliseconds of the end.
    assert mock.wait_for(lambda s: s["heads_pending"] == 0 and s["open_streams"] == 0, 10), (
        mock.stats()
    )


def post(server: Server, prompt: str = "Hi") -> requests.Response:
    return open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": prompt})


def test_a_slow_head_starts_the_response_and_keepalives_flow(
    server: Server, mock: OpenAIMock
) -> None:
    mock.script(MockReply(text="late but whole", headers_delay=1.5))
    response = post(server)
    # The head came back while the upstream still held its status line.
    assert response.status_code == 200
    assert mock.stats()["heads_pending"] == 1
    body = response.content
    assert body.startswith(b"retry: ")
    first_text = body.index(b'data: {"content"')
    assert body.count(b": keepalive", 0, first_text) >= 2  # 1.5 s of head at 0.3 s each
    result = collect(body)
    assert result.text == "late but whole"
    assert (result.start["provider"], result.start["model"]) == ("openai", mock.default_model)
    done = json.loads(result.named("done")[0].data)
    assert (done["finish_reason"], done["provider"]) == ("stop", "openai")
    assert result.ended


def test_a_slow_head_then_a_failure_is_an_error_event(server: Server, mock: OpenAIMock) -> None:
    """Retries included: a 503 after 0.6 s, a backoff, then a second slow 503."""
    mock.script(MockReply(status=503, headers_delay=0.6))
    requests_before = mock.stats()["requests"]
    response = post(server)
    assert response.status_code == 200
    result = collect(response.content)
    assert result.start["stream_id"]
    error = json.loads(result.named("error")[0].data)["error"]
    assert error["type"] == "provider_error" and "503" in error["message"]
    assert result.ended and result.text == ""
    assert mock.stats()["requests"] == requests_before + 2


def test_a_fast_failure_stays_an_http_error(server: Server, mock: OpenAIMock) -> None:
    mock.script(MockReply(status=401))
    response = post(server)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "provider_auth_error"


def test_a_fast_head_is_unchanged(server: Server, mock: OpenAIMock) -> None:
    mock.script(MockReply(text="quick"))
    result = collect(post(server).content)
    assert result.text == "quick" and result.ended


def test_a_client_that_leaves_during_the_head_wait_stops_the_upstream_request(
    server: Server, mock: OpenAIMock
) -> None:
    mock.script(MockReply(headers_delay=30))
    before = mock.stats()
    response = post(server)
    assert response.status_code == 200
    next(response.iter_content(chunk_size=None))  # retry + start
    assert mock.wait_for(lambda s: s["heads_pending"] == 1, 5)
    left_at = time.monotonic()
    response.close()
    # The worker learns of the departure at its next keepalive write, waits the grace,
    # then aborts: the upstream sees its connection end.
    bound = KEEPALIVE + GRACE + 3.0  # + the watchdog tick and a loaded machine's margin
    assert mock.wait_for(lambda s: s["heads_abandoned"] == before["heads_abandoned"] + 1, bound), (
        mock.stats()
    )
    assert time.monotonic() - left_at < bound


def test_a_client_that_leaves_during_a_retry_backoff_stops_the_retry(
    server: Server, mock: OpenAIMock
) -> None:
    """A slow 429 (so the response started) asks for 3 s; the client leaves at once."""
    mock.script(MockReply(status=429, retry_after="3", headers_delay=0.6), MockReply("never"))
    before = mock.stats()["requests"]
    response = post(server)
    assert response.status_code == 200
    first_at = time.monotonic()
    next(response.iter_content(chunk_size=None))
    response.close()
    # Past the moment the retry would have been sent (0.6 s + 3 s after the first try),
    # with a margin: no second request ever came.
    time.sleep(max(0.0, first_at + 5.5 - time.monotonic()))  # waiting out the retry time
    assert mock.stats()["requests"] == before + 1


def test_an_observed_provider_is_stopped_too(gunicorn_server: Any, mock: OpenAIMock) -> None:
    """With metrics on, the provider is behind an observing wrapper: the abort reaches
    the adapter through it, and the late answer is counted like any other."""
    server = gunicorn_server({**CONFIG, "AI_SSE_BASE_URL": mock.base_url, "AI_SSE_METRICS": True})
    mock.script(MockReply(text="counted", headers_delay=0.8))
    assert collect(post(server).content).text == "counted"
    mock.script(MockReply(headers_delay=30))
    before = mock.stats()["heads_abandoned"]
    response = post(server)
    next(response.iter_content(chunk_size=None))
    assert mock.wait_for(lambda s: s["heads_pending"] == 1, 5)
    response.close()
    assert mock.wait_for(lambda s: s["heads_abandoned"] == before + 1, KEEPALIVE + GRACE + 3.0)
