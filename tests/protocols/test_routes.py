"""The protocol routes in-process: choice per request, useChat's routes, OpenAI's route."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse.errors import ConfigurationError
from flask_ai_sse.protocols import PROTOCOLS
from flask_ai_sse.testing import collect
from tests.apps.hardening_app import create_app

from .decode import read

ANSWER = "One two three four."


@pytest.fixture
def app() -> Flask:
    return create_app({"AI_SSE_FAKE_RESPONSE": ANSWER, "AI_SSE_FAKE_DELAY": 0})


def ui_body(chat_id: str = "chat-1", text: str = "Hi") -> dict:
    """What DefaultChatTransport posts for a first message."""
    return {
        "id": chat_id,
        "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        "trigger": "submit-message",
        "messageId": None,
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_stream_routes_speak_the_protocol_asked_for(app, protocol, method):
    client = app.test_client()
    if method == "GET":
        resp = client.get(f"/ai/stream?prompt=hi&protocol={protocol}")
    else:
        resp = client.post(f"/ai/stream?protocol={protocol}", json={"prompt": "hi"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/event-stream"
    assert (resp.headers.get("x-vercel-ai-ui-message-stream") == "v1") == (protocol == "vercel")
    got = read(protocol, resp.get_data())
    assert got.text == ANSWER and got.finish == "stop" and got.done


def test_unknown_protocol_is_a_400_before_anything_starts(app):
    resp = app.test_client().get("/ai/stream?prompt=hi&protocol=soap")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == "invalid_protocol"


def test_the_default_protocol_comes_from_config():
    app = create_app({"AI_SSE_FAKE_RESPONSE": ANSWER, "AI_SSE_PROTOCOL": "openai"})
    body = app.test_client().get("/ai/stream?prompt=hi").get_data()
    assert read("openai", body).text == ANSWER
    with pytest.raises(ConfigurationError, match="AI_SSE_PROTOCOL"):
        AISSE(_app_with(AI_SSE_PROTOCOL="xml"))


def _app_with(**config) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_ask_stream_and_task_take_a_protocol():
    app = _app_with(AI_SSE_FAKE_RESPONSE=ANSWER, AI_SSE_FAKE_DELAY=0)
    ai = AISSE(app)

    @app.get("/a")
    def a():
        return ai.ask_stream("hi", protocol="vercel")

    @app.get("/b")
    def b():
        return ai.task().prompt("hi").stream(protocol="openai")

    client = app.test_client()
    assert read("vercel", client.get("/a").get_data()).text == ANSWER
    assert read("openai", client.get("/b").get_data()).text == ANSWER


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_attach_resumes_after_last_event_id_in_every_protocol(app, protocol):
    client = app.test_client()
    whole = client.post(f"/ai/stream?protocol={protocol}", json={"prompt": "hi"}).get_data()
    got = read(protocol, whole)
    stream_id, _, _ = got.ids[0].rpartition(":")
    for cut in sorted(set(got.ids)):
        rest = client.get(
            f"/ai/streams/{stream_id}?protocol={protocol}", headers={"Last-Event-ID": cut}
        ).get_data()
        # Everything after the last event with that id, byte for byte.
        marker = f"id: {cut}\n".encode()
        tail = whole[whole.rindex(marker) :].split(b"\n\n", 1)[1]
        prefix = b"retry: 3000\n\n" if protocol != "openai" else b""
        assert rest == prefix + tail, cut


def test_readers_of_one_stream_may_use_different_protocols(app):
    client = app.test_client()
    first = client.post("/ai/stream?protocol=vercel", json={"prompt": "hi"}).get_data()
    stream_id = read("vercel", first).ids[0].rpartition(":")[0]
    texts = {"vercel": read("vercel", first).text}
    for protocol in ("default", "openai"):
        body = client.get(f"/ai/streams/{stream_id}?protocol={protocol}").get_data()
        texts[protocol] = read(protocol, body).text
    assert set(texts.values()) == {ANSWER}


# -- useChat --------------------------------------------------------------------------------


def test_chat_answers_a_ui_message_stream(app):
    resp = app.test_client().post("/ai/chat", json=ui_body())
    assert resp.status_code == 200
    assert resp.headers["x-vercel-ai-ui-message-stream"] == "v1"
    got = read("vercel", resp.get_data())
    assert got.text == ANSWER and got.done


def test_chat_sends_the_whole_conversation_upstream():
    app = create_app({"AI_SSE_FAKE_RESPONSE": "{prompt}", "AI_SSE_FAKE_DELAY": 0})
    body = ui_body(text="ignored")
    body["messages"] = [
        {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
        {"id": "1", "role": "user", "parts": [{"type": "text", "text": "First"}]},
        {
            "id": "2",
            "role": "assistant",
            "parts": [{"type": "step-start"}, {"type": "text", "text": "Answer"}],
        },
        {
            "id": "3",
            "role": "user",
            "parts": [{"type": "text", "text": "Sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    got = read("vercel", app.test_client().post("/ai/chat", json=body).get_data())
    assert got.text == "Second"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"messages": []}, "invalid_type"),
        ({"id": "c", "messages": "hi"}, "invalid_type"),
        ({"id": "c", "messages": [{"role": "user", "parts": "x"}]}, "invalid_type"),
        ({"id": "c", "messages": [{"role": "robot", "parts": []}]}, "invalid_role"),
        ({"id": "c", "messages": [{"role": "user", "parts": [{"type": "text"}]}]}, "invalid_type"),
        ({"id": "c", "messages": [{"role": "assistant", "parts": []}]}, "missing_prompt"),
        ({**ui_body(), "model": "someone-elses-model"}, "model_not_allowed"),
    ],
)
def test_chat_refuses_bad_bodies_before_streaming(app, body, kind):
    resp = app.test_client().post("/ai/chat", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == kind


def test_chat_resume_replays_the_chats_stream_for_its_owner_only(app):
    client = app.test_client()
    alice = {"X-User": "alice"}
    first = client.post("/ai/chat", json=ui_body("c9"), headers=alice).get_data()
    again = client.get("/ai/chat/c9/stream", headers=alice)
    assert again.status_code == 200
    assert again.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert again.get_data() == first  # the AI SDK replays a resumed stream from its start
    assert client.get("/ai/chat/c9/stream", headers={"X-User": "mallory"}).status_code == 204
    assert client.get("/ai/chat/c9/stream").status_code == 204
    assert client.get("/ai/chat/other/stream", headers=alice).status_code == 204
    # Another owner's chat with the same id does not move alice's pointer.
    client.post("/ai/chat", json=ui_body("c9"), headers={"X-User": "bob"}).get_data()
    assert client.get("/ai/chat/c9/stream", headers=alice).get_data() == first


def test_chat_resume_points_at_the_latest_turn(app):
    client = app.test_client()
    client.post("/ai/chat", json=ui_body("c2", "one")).get_data()
    second = client.post("/ai/chat", json=ui_body("c2", "two")).get_data()
    assert client.get("/ai/chat/c2/stream").get_data() == second


# -- OpenAI ---------------------------------------------------------------------------------


def test_completions_without_streaming_is_a_chat_completion(app):
    resp = app.test_client().post(
        "/ai/v1/chat/completions",
        json={"model": "fake-1", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_completions_stream_with_usage_last(app):
    resp = app.test_client().post(
        "/ai/v1/chat/completions",
        json={
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_completion_tokens": 50,
            "temperature": 0.5,
        },
    )
    assert resp.status_code == 200
    events = [e.data for e in collect(resp.get_data()).events]
    chunks = [json.loads(d) for d in events if d != "[DONE]"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}], "model": "gpt-x"},
            400,
            "model_not_allowed",
        ),
        ({"messages": []}, 400, "missing_prompt"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, 400, "out_of_range"),
        ({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, 400, "invalid_type"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "out_of_range"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            400,
            "unsupported_content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            400,
            "invalid_part",
        ),
    ],
)
def test_completions_errors_are_openai_error_objects(app, body, status, kind):
    resp = app.test_client().post("/ai/v1/chat/completions", json=body)
    assert resp.status_code == status
    error = resp.get_json()["error"]
    assert error["type"] == kind and error["code"] == kind
    assert isinstance(error["message"], str) and "param" in error


def test_completions_malformed_json_is_an_openai_error(app):
    resp = app.test_client().post(
        "/ai/v1/chat/completions", data="{", content_type="application/json"
    )
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == "invalid_json"


# -- the client -----------------------------------------------------------------------------


def test_client_js_is_served_as_a_module(app):
    resp = app.test_client().get("/ai/client.js")
    assert resp.status_code == 200
    assert resp.mimetype == "text/javascript"
    assert b"export " in resp.get_data()
    etag = resp.headers["ETag"]
    assert (
        app.test_client().get("/ai/client.js", headers={"If-None-Match": etag}).status_code == 304
    )


@pytest.mark.redis
def test_chat_resume_with_a_redis_store(redis_url):
    app = create_app(
        {"AI_SSE_FAKE_RESPONSE": ANSWER, "AI_SSE_FAKE_DELAY": 0, "AI_SSE_STORE": redis_url}
    )
    client = app.test_client()
    first = client.post("/ai/chat", json=ui_body("r1"), headers={"X-User": "ann"}).get_data()
    assert client.get("/ai/chat/r1/stream", headers={"X-User": "ann"}).get_data() == first
    assert client.get("/ai/chat/r1/stream", headers={"X-User": "bob"}).status_code == 204


def test_chat_with_a_conversation_sends_the_stored_history_not_the_clients(tmp_path):
    """With persistence, ``conversation_id`` in the transport's body: the new user message
    is stored, and the stored conversation (not the client's copy) goes upstream."""
    from tests.apps.persist_app import create_app as persist_app

    app = persist_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/chat.db"})
    with app.app_context():
        app.extensions["test_db"].create_all()
    client = app.test_client()
    conversation = client.post("/ai/conversations", json={}).get_json()["id"]
    first = ui_body("c-db", "one")
    first["conversation_id"] = conversation
    got = read("vercel", client.post("/ai/chat", json=first).get_data())
    assert got.text == "Answer to one."
    second = ui_body("c-db", "two")
    second["conversation_id"] = conversation
    second["messages"] = [
        {"id": "1", "role": "user", "parts": [{"type": "text", "text": "one"}]},
        {"id": "2", "role": "assistant", "parts": [{"type": "text", "text": "(edited)"}]},
        {"id": "3", "role": "user", "parts": [{"type": "text", "text": "two"}]},
    ]
    body = client.post("/ai/chat", json=second).get_data()
    assert read("vercel", body).text == "Answer to two."
    sent = client.get("/_test/request?prompt=two").get_json()
    assert sent == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "Answer to one."},
        {"role": "user", "content": "two"},
    ]
    stored = client.get(f"/ai/conversations/{conversation}").get_json()["messages"]
    assert [m["content"] for m in stored] == ["one", "Answer to one.", "two", "Answer to two."]
    start = json.loads(body.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert start["messageMetadata"]["conversation_id"] == conversation
