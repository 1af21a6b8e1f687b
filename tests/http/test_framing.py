"""Point 6: no user, provider or view text can add SSE fields or events to a stream."""

from __future__ import annotations

import json

import pytest

from flask_ai_sse import AISSE, Comment, ServerSentEvent
from flask_ai_sse.errors import ProviderError
from flask_ai_sse.testing import FakeProvider, FakeReply

from .framing import assert_well_formed
from .sse_client import call

INJECTION = (
    'a\r\nb\rc\n\ndata: {"content": "pwned"}\n\nevent: done\nid: x:99\n'
    "retry: 1\r\n\r\n: comment\n\u2028\u2029\x00\x85end"
)
APP = "tests.apps.hardening_app:create_app()"


@pytest.fixture(scope="module")
def server(module_gunicorn):
    return module_gunicorn(
        {
            "AI_SSE_FAKE_RESPONSE": "{prompt}",
            "AI_SSE_FAKE_DELAY": 0.0,
            "AI_SSE_ALLOWED_MODELS": "*",
        },
        app=APP,
    )


@pytest.mark.server
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_user_text_arrives_whole_as_content(server, method):
    field = (
        {"params": {"prompt": INJECTION}} if method == "GET" else {"json": {"prompt": INJECTION}}
    )
    resp = call(method, f"{server.url}/ai/stream", **field)
    assert resp.status_code == 200
    result = assert_well_formed(resp.content)
    assert result.text == INJECTION  # JSON carries CR, LF, NUL and U+2028 exactly
    assert [e.event for e in result.events] == ["start"] + ["message"] * (
        len(result.events) - 3
    ) + ["done", "message"]


@pytest.mark.server
@pytest.mark.parametrize("case", ["bad-event", "bad-id", "bad-type"])
def test_a_custom_stream_yielding_a_bad_event_ends_with_an_error_event(server, case):
    resp = call("GET", f"{server.url}/custom/{case}")
    assert resp.status_code == 200
    body = resp.content
    assert b"injected" not in body
    events = [e for e in assert_well_formed(body + b"data: [DONE]\n\n").events][:-1]
    assert [(e.event, e.id) for e in events] == [("tick", "1"), ("error", "1")]
    error = json.loads(events[1].data)["error"]
    assert error == {"type": "internal_error", "message": "Internal error."}
    # The worker is fine and serves the next request.
    assert call("GET", f"{server.url}/ai/stream", params={"prompt": "next"}).status_code == 200


def test_provider_text_reasoning_and_errors_stay_inside_their_events(make_app):
    reply = FakeReply(
        text=INJECTION, reasoning=[INJECTION], fail_after=2, error=ProviderError(INJECTION)
    )
    app = make_app(AISSE(provider=FakeProvider(script=[reply], delay=0)), AI_SSE_KEEPALIVE=5)
    body = app.test_client().get("/ai/stream?prompt=x").get_data()
    result = assert_well_formed(body)
    assert json.loads(result.named("reasoning")[0].data)["content"] == INJECTION
    error = json.loads(result.named("error")[0].data)["error"]
    assert error["message"] == INJECTION


def test_custom_stream_text_and_comments_cannot_add_events(make_app):
    ai = AISSE(provider=FakeProvider(delay=0))
    app = make_app(ai, AI_SSE_KEEPALIVE=5)

    @app.get("/custom")
    def custom():
        return ai.event_stream(
            [INJECTION, {"text": INJECTION}, Comment(INJECTION), ServerSentEvent(INJECTION, "x")]
        )

    result = assert_well_formed(app.test_client().get("/custom").get_data() + b"data: [DONE]\n\n")
    data = [e.data for e in result.events][:-1]
    # Plain text is split on CR, LF and CRLF into data lines, which the client joins with LF.
    as_lines = INJECTION.replace("\r\n", "\n").replace("\r", "\n")
    assert data == [
        as_lines,
        json.dumps({"text": INJECTION}, separators=(",", ":"), ensure_ascii=False),
        as_lines,
    ]
    assert [e.event for e in result.events][:-1] == ["message", "message", "x"]
