"""The extension object: registration, config precedence and the Python API."""

from __future__ import annotations

import json

import pytest
from flask import request

from flask_ai_sse import AISSE, Comment, End, ServerSentEvent, error_event
from flask_ai_sse.errors import ConfigurationError, ProviderError, ValidationError
from flask_ai_sse.testing import FakeProvider, FakeReply, collect, parse_sse


def test_init_app_pattern_serves_several_apps(make_app):
    ai = AISSE()
    one, two = make_app(ai, AI_SSE_URL_PREFIX="/one"), make_app(ai, AI_SSE_URL_PREFIX="/two")
    assert one.extensions["ai_sse"].extension is ai
    assert one.extensions["ai_sse"] is not two.extensions["ai_sse"]
    assert collect(one.test_client().get("/one/stream?prompt=a")).ended
    assert collect(two.test_client().get("/two/stream?prompt=b")).ended
    assert one.test_client().get("/two/stream?prompt=b").status_code == 404


def test_double_registration_is_refused(make_app):
    ai = AISSE()
    app = make_app(ai)
    with pytest.raises(RuntimeError, match="already been registered"):
        ai.init_app(app)
    with pytest.raises(RuntimeError, match="already been registered"):
        AISSE(app)


def test_use_before_init_app_says_what_to_do(make_app):
    ai = AISSE()
    with make_app().app_context(), pytest.raises(RuntimeError, match="forget to call 'init_app'"):
        ai.ask("hi")


def test_constructor_beats_config_beats_default(make_app):
    app = make_app(
        AISSE(url_prefix="/from-arg"), AI_SSE_URL_PREFIX="/from-config", AI_SSE_MODEL="from-config"
    )
    assert app.config["AI_SSE_URL_PREFIX"] == "/from-arg"
    assert app.config["AI_SSE_MODEL"] == "from-config"
    assert app.config["AI_SSE_KEEPALIVE"] == 15.0
    assert app.extensions["ai_sse"].provider.model == "from-config"


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("AI_SSE_PROVIDER", "nope", "Unknown AI_SSE_PROVIDER"),
        ("AI_SSE_STORE", "mongodb://x", "AI_SSE_STORE"),
        ("AI_SSE_DISCONNECT_POLICY", "maybe", "AI_SSE_DISCONNECT_POLICY"),
    ],
)
def test_bad_config_fails_at_start_up(key, value, match, make_app):
    with pytest.raises(ConfigurationError, match=match):
        make_app(**{key: value})


def test_ask_stream_from_a_view_uses_system_and_options(make_app):
    provider = FakeProvider(script=["Hi there."])
    ai = AISSE(provider=provider)
    app = make_app(ai)

    @app.post("/chat")
    def chat():
        return ai.ask_stream(
            request.json["prompt"], system="Be brief.", temperature=0.5, max_tokens=9, top_k=3
        )

    result = collect(app.test_client().post("/chat", json={"prompt": "hello"}))
    assert result.text == "Hi there."
    sent = provider.requests[0]
    assert (sent.system, sent.temperature, sent.max_tokens) == ("Be brief.", 0.5, 9)
    assert sent.messages == [{"role": "user", "content": "hello"}]
    assert sent.options == {"top_k": 3}
    assert json.loads(result.terminal.data)["finish_reason"] == "stop"


def test_provider_failure_before_first_byte_is_an_http_error(make_app):
    provider = FakeProvider(script=[FakeReply(fail_before=ProviderError(provider="fake"))])
    ai = AISSE(provider=provider)
    app = make_app(ai)

    @app.get("/chat")
    def chat():
        return ai.ask_stream("hi")

    resp = app.test_client().get("/chat")
    assert resp.status_code == 502
    assert resp.json == {
        "error": {"type": "provider_error", "message": "The model provider failed."}
    }


def test_failure_after_start_is_an_error_event_then_done(make_app):
    provider = FakeProvider(script=[FakeReply(text="one two three", fail_after=2)])
    app = make_app(AISSE(provider=provider))
    result = collect(app.test_client().get("/ai/stream?prompt=x"))
    assert result.text == "one two "
    assert result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "provider_error"
    assert result.ended
    assert len(result.named("done")) == 0


def test_python_api_validation_raises(make_app):
    ai = AISSE()
    app = make_app(ai)
    with app.test_request_context(), pytest.raises(ValidationError, match="temperature"):
        ai.ask("hi", temperature=5)


def test_ask_stream_and_task_builder(make_app):
    provider = FakeProvider(script=["Whole answer."])
    ai = AISSE(provider=provider)
    app = make_app(ai)
    with app.test_request_context():
        answer = (
            ai.task().system("S").message("assistant", "earlier").prompt("now").model("m2").ask()
        )
        assert answer.text == "Whole answer."
        assert answer.finish_reason == "stop"
        assert answer.model == "m2"
        sent = provider.requests[-1]
        assert sent.system == "S" and sent.model == "m2"
        assert [m["role"] for m in sent.messages] == ["assistant", "user"]
        chunks = ai.task().prompt("x").chunks()
        texts = [c.text for c in chunks if c.kind == "text"]
        assert "".join(texts) == "Whole answer."
        assert chunks.is_closed


def test_stream_iterator_close_closes_upstream(make_app):
    ai = AISSE()
    app = make_app(ai)
    with app.app_context():
        chunks = ai.stream("hello")
        first = next(chunks)
        assert first.kind == "text"
        upstream = chunks._stream
        chunks.close()
        assert upstream.closed and chunks.is_closed
        assert list(chunks) == []


def test_event_stream_custom_events(make_app):
    ai = AISSE()
    app = make_app(ai)

    @app.get("/custom")
    def custom():
        name = request.args["name"]  # the iterable runs with the request context

        def events():
            yield ServerSentEvent({"hello": name}, event="greet", id="1")
            yield "plain\nline"
            yield [ServerSentEvent("a"), ServerSentEvent("b")]
            yield Comment("working")
            yield error_event("It broke.", type="job_failed", code=17)
            yield End()
            yield "never sent"

        return ai.event_stream(events(), retry=1234, headers={"X-Custom": "yes"})

    resp = app.test_client().get("/custom?name=Ada")
    assert resp.headers["X-Custom"] == "yes"
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    body = resp.get_data()
    assert body == (
        b"retry: 1234\n\n"
        b'event: greet\nid: 1\ndata: {"hello":"Ada"}\n\n'
        b"data: plain\ndata: line\n\n"
        b"data: a\n\ndata: b\n\n"
        b": working\n\n"
        b'event: error\ndata: {"error":{"type":"job_failed","message":"It broke.","code":17}}\n\n'
        b"data: [DONE]\n\n"
    )


def test_event_stream_error_inside_iterable_hides_details(make_app):
    ai = AISSE()
    app = make_app(ai)

    def events():
        yield "before"
        raise RuntimeError("secret internal detail")

    with app.test_request_context():
        events_out = parse_sse(ai.event_stream(events()).response)
    assert events_out[0].data == "before"
    assert events_out[-1].event == "error"
    assert "secret" not in events_out[-1].data
    assert events_out[-1].json()["error"]["type"] == "internal_error"


def test_event_stream_keepalive_with_custom_text(make_app):
    import threading

    ai = AISSE()
    app = make_app(ai)
    release = threading.Event()

    def events():
        release.wait(5)
        yield "late"

    with app.test_request_context():
        body = iter(ai.event_stream(events(), keepalive=0.05, keepalive_text="ping").response)
        assert next(body) == b"retry: 3000\n\n"
        assert next(body) == b": ping\n\n"
        release.set()
        rest = b"".join(body)
    assert rest.endswith(b"data: late\n\n")


def test_cancel_and_attach_unknown_stream_are_404(make_app):
    app = make_app()
    client = app.test_client()
    for resp in (client.get("/ai/streams/nope"), client.post("/ai/streams/nope/cancel")):
        assert resp.status_code == 404
        assert resp.json["error"]["type"] == "not_found"
    resp = client.get("/ai/stream?prompt=x", headers={"Last-Event-ID": "gone:3"})
    assert resp.status_code == 404


def test_abort_in_the_authorize_hook_is_json(make_app):
    from flask import abort

    ai = AISSE()
    app = make_app(ai)

    @ai.authorize
    def who():
        abort(401)

    resp = app.test_client().get("/ai/stream?prompt=x")
    assert resp.status_code == 401
    assert resp.json["error"]["type"] == "unauthorized"


def test_authorize_hook_runs_once_per_request(make_app):
    ai = AISSE()
    app = make_app(ai)
    calls = []

    @ai.authorize
    def who():
        calls.append(1)
        return "alice"

    result = collect(app.test_client().get("/ai/stream?prompt=x"))
    assert result.ended
    assert len(calls) == 1


def test_fallbacks_get_their_own_options_not_the_primarys():
    from flask_ai_sse._settings import read_settings

    config = {
        "AI_SSE_PROVIDER": "openai",
        "AI_SSE_PROVIDER_OPTIONS": {"headers": {"X-Primary": "1"}},
        "AI_SSE_FALLBACKS": [
            {"provider": "anthropic"},
            {"provider": "gemini", "options": {"x": 1}},
        ],
    }
    settings = read_settings(config, {})
    primary, (other, mine) = settings.provider, settings.fallbacks
    assert primary.options == {"headers": {"X-Primary": "1"}}
    assert other.options == {}
    assert mine.options == {"x": 1}
