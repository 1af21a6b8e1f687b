"""Every provider through the whole stack: gunicorn's gevent worker, real sockets, a mock upstream.

The mock runs in the test process; the app, in gunicorn, streams from it. What
the browser gets is checked on the wire, and what the upstream saw (requests,
open streams) from the mock's side.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import FORMATS, MockReply, MockUpstream

from .provider_kit import KEY

pytestmark = pytest.mark.server

Stack = tuple[MockUpstream, str]


@pytest.fixture(scope="module", params=sorted(FORMATS))
def stack(request: pytest.FixtureRequest, module_gunicorn: Any) -> Iterator[Stack]:
    """A mock upstream of one format, and a gunicorn server whose app streams from it."""
    with FORMATS[request.param](api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": mock.name,
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MAX_RETRIES": 1,
                "AI_SSE_RETRY_MAX_WAIT": 0.05,
                "AI_SSE_READ_TIMEOUT": 1.5,
                "AI_SSE_DISCONNECT_GRACE": 0,
                "AI_SSE_KEEPALIVE": 0.5,
            }
        )
        yield mock, server.url
        server.stop()


@pytest.fixture(autouse=True)
def nothing_left_open(stack: Stack) -> Iterator[None]:
    mock, _ = stack
    mock.script(MockReply())
    yield
    # 10 s: the gunicorn worker closes its upstream socket within milliseconds; the margin is
    # for a loaded machine (the wait ends as soon as the count is reached).
    assert mock.wait_for_open_streams(0, timeout=10), mock.stats()


def post_stream(url: str, **body: Any) -> requests.Response:
    return requests.post(f"{url}/ai/stream", json=body, stream=True, timeout=(3, 10))


def events(response: requests.Response) -> Iterator[ServerSentEvent]:
    decoder = SSEDecoder()
    for piece in response.iter_content(chunk_size=None):
        for event in decoder.feed(piece):
            assert isinstance(event, ServerSentEvent)
            yield event


def test_stream(stack: Stack) -> None:
    mock, url = stack
    reply = MockReply(text="Streamed 🍕 through\n\ndata: everything.", split_writes=True)
    mock.script(reply)
    response = post_stream(url, prompt="Hi", system="Be brief.", max_tokens=50)
    assert response.status_code == 200
    result = collect(response.content)
    assert result.text == reply.text
    assert (result.start["provider"], result.start["model"]) == (mock.name, mock.default_model)
    done = json.loads(result.named("done")[0].data)
    assert done["finish_reason"] == "stop"
    assert done["usage"] == {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.total_tokens,
        "estimated": False,
    }
    assert result.ended
    sent = json.dumps(mock.last_request.json)
    assert "Be brief." in sent and "Hi" in sent


def test_ask(stack: Stack) -> None:
    mock, url = stack
    mock.script(MockReply(text="A whole answer.", finish_reason="length"))
    response = requests.post(f"{url}/ai/ask", json={"prompt": "Hi"}, timeout=10)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["text"], answer["finish_reason"]) == ("A whole answer.", "length")


@pytest.mark.parametrize(
    ("reply", "status", "error_type"),
    [
        (MockReply(status=429, retry_after="7"), 429, "provider_rate_limited"),
        (MockReply(status=503), 502, "provider_error"),
        (MockReply(status=401), 502, "provider_auth_error"),
        (MockReply(headers_delay=5), 504, "timeout"),
    ],
)
def test_failures_before_the_first_byte_are_http_errors(
    stack: Stack, reply: MockReply, status: int, error_type: str
) -> None:
    mock, url = stack
    mock.script(reply)
    response = post_stream(url, prompt="Hi")
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["type"] == error_type
    assert KEY not in response.text
    if status == 429:
        assert response.headers["Retry-After"] == "7"


def test_mid_stream_failure_is_an_error_event(stack: Stack) -> None:
    mock, url = stack
    mock.script(MockReply(text="one two three", fault="reset", at=2))
    result = collect(post_stream(url, prompt="Hi").content)
    assert result.text == "one two "
    error = json.loads(result.named("error")[0].data)
    assert error["error"]["type"] == "provider_unavailable"
    assert result.ended


def test_early_client_close_closes_the_upstream_stream(stack: Stack) -> None:
    mock, url = stack
    before = mock.stats()["streams_client_closed"]
    mock.script(MockReply(chunks=["tick "] * 400, delay=0.05))
    response = post_stream(url, prompt="Hi")
    for event in events(response):
        if event.event == "message":
            break
    assert mock.open_streams == 1
    response.close()  # the browser tab goes away
    assert mock.wait_for(lambda stats: stats["streams_client_closed"] == before + 1, timeout=10)


def test_cancel_closes_the_upstream_stream_during_a_stall(stack: Stack) -> None:
    mock, url = stack
    mock.script(MockReply(text="before the stall", stall=60, at=1))
    response = post_stream(url, prompt="Hi")
    received = events(response)
    start = json.loads(next(received).data)
    assert next(received).json() == {"content": "before "}
    cancel = requests.post(f"{url}/ai/streams/{start['stream_id']}/cancel", timeout=10)
    assert cancel.status_code < 300
    rest = list(received)
    assert json.loads(rest[-2].data)["finish_reason"] == "cancelled"
    assert rest[-1].data == "[DONE]"
    assert mock.wait_for_open_streams(0, timeout=5)
