"""Persistence in-process: models, the Python API, streams, reconciliation, CLI, routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy

from flask_ai_sse import AISSE
from flask_ai_sse.errors import ConfigurationError, NotFound, ProviderStatusError
from flask_ai_sse.persistence import MessageStream
from flask_ai_sse.persistence.models import utcnow
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

Make = Callable[..., tuple[Flask, AISSE, FakeProvider]]
OWNER = {"X-Owner": "alice"}


@pytest.fixture
def make_db_app(tmp_path: Path) -> Make:
    """An app on a SQLite file with a scripted fake provider; the owner is ``X-Owner``."""

    def make(*replies: FakeReply | str, **config: Any) -> tuple[Flask, AISSE, FakeProvider]:
        app = Flask(__name__)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
        app.config.update(config)
        db = SQLAlchemy(app)
        provider = FakeProvider(script=replies or ("Hello there.",), delay=0)
        ai = AISSE(app, db=db, provider=provider)
        ai.authorize(lambda: request.headers.get("X-Owner"))
        with app.app_context():
            db.create_all()
        return app, ai, provider

    return make


def ended(app: Flask, ai: AISSE, message_id: int, timeout: float = 5.0) -> Any:
    """The message once it left ``streaming`` (its end is written as the stream ends)."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            message = ai.db.session.get(ai.Message, message_id)
            if message.status != "streaming" or time.monotonic() > deadline:
                return message
            ai.db.session.expire_all()
            time.sleep(0.01)


def test_models_live_in_the_apps_metadata(make_db_app: Make) -> None:
    app, ai, _ = make_db_app()
    assert ai.Conversation.__table__.name == "ai_sse_conversations"
    assert ai.Message.__table__.name == "ai_sse_messages"
    assert ai.Conversation.metadata is ai.db.metadata
    with app.app_context():
        tables = sa.inspect(ai.db.engine).get_table_names()
    assert {"ai_sse_conversations", "ai_sse_messages"} <= set(tables)
    again = AISSE(db=ai.db)
    assert again.Conversation is ai.Conversation, "one db: the models are defined once"
    with pytest.raises(ConfigurationError):
        AISSE(db=ai.db, table_prefix="other_")


def test_table_prefix_argument_beats_config() -> None:
    for kwargs, config, expected in [
        ({"table_prefix": "arg_"}, {"AI_SSE_TABLE_PREFIX": "cfg_"}, "arg_"),
        ({}, {"AI_SSE_TABLE_PREFIX": "cfg_"}, "cfg_"),
        ({}, {}, "ai_sse_"),
    ]:
        app = Flask(__name__)
        app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", **config)
        ai = AISSE(app, db=SQLAlchemy(app), **kwargs)
        assert ai.Message.__table__.name == f"{expected}messages"
        assert app.config["AI_SSE_TABLE_PREFIX"] == expected


def test_python_api_round_trip(make_db_app: Make) -> None:
    app, ai, _ = make_db_app()
    with app.app_context():
        store = ai.conversations
        conversation = store.create(title="Notes", system="Be kind.", owner="alice")
        store.add_message(conversation.id, "user", "Hi", owner="alice")
        with store.start_message(conversation.id, meta={"ui": "v2"}, owner="alice") as message:
            message.append("Hel")
            message.append("lo")
        assert message.status == "completed"
        stored = store.messages(conversation.id, owner="alice")
        with pytest.raises(NotFound):
            store.messages(conversation.id, owner="bob")
    assert [(m.role, m.content, m.status) for m in stored] == [
        ("system", "Be kind.", "completed"),
        ("user", "Hi", "completed"),
        ("assistant", "Hello", "completed"),
    ]
    meta = stored[-1].meta
    assert meta["ui"] == "v2" and meta["stream_chunks"] == 2 and meta["finish_reason"] == "stop"
    assert {"stream_duration", "time_to_first_token", "model", "provider", "usage"} <= set(meta)


def test_message_stream_writes_partial_text_by_chunks_and_by_time(make_db_app: Make) -> None:
    app, ai, _ = make_db_app(AI_SSE_PERSIST_EVERY=3, AI_SSE_PERSIST_INTERVAL=10)
    now = [100.0]
    with app.app_context():
        store = ai.conversations
        cid = store.create(owner=None).id
        opened = store.start_message(cid, owner=None)
        message = MessageStream(
            opened.writer, opened.id, cid, interval=10, every=3, clock=lambda: now[0]
        )

        def stored() -> str:
            return str(store.messages(cid, owner=None)[-1].content)

        message.append("a")
        message.append("b")
        assert stored() == ""
        message.append("c")
        assert stored() == "abc", "every 3 chunks"
        now[0] += 10
        message.append("d")
        assert stored() == "abcd", "every 10 seconds"
        message.append("e")
        assert stored() == "abcd"
        message.fail("tool_crashed")
        last = store.messages(cid, owner=None)[-1]
    assert (last.status, last.content, last.meta["reason"]) == ("failed", "abcde", "tool_crashed")
    with pytest.raises(RuntimeError):
        message.append("f")


def test_an_exception_inside_a_message_stream_fails_it(make_db_app: Make) -> None:
    app, ai, _ = make_db_app()
    with app.app_context():
        store = ai.conversations
        cid = store.create(owner=None).id
        with pytest.raises(ValueError), store.start_message(cid, owner=None) as message:
            message.append("partial")
            raise ValueError("secret internal detail")
        last = store.messages(cid, owner=None)[-1]
    assert (last.status, last.content) == ("failed", "partial")
    assert last.meta["error"] == {"type": "internal_error", "message": "Internal error."}


def _streaming_message(app: Flask, ai: AISSE, age: float) -> int:
    with app.app_context():
        cid = ai.conversations.create(owner=None).id
        message = ai.conversations.start_message(cid, owner=None)
        message.append("half an ans")
        message.flush()
        ai.db.session.execute(
            sa.update(ai.Message)
            .where(ai.Message.id == message.id)
            .values(updated_at=utcnow() - timedelta(seconds=age))
        )
        ai.db.session.commit()
    return message.id


def test_reconcile_marks_only_old_streaming_messages(make_db_app: Make) -> None:
    app, ai, _ = make_db_app(AI_SSE_STREAM_TIMEOUT=60)
    old = _streaming_message(app, ai, age=61)
    young = _streaming_message(app, ai, age=30)
    with app.app_context():
        assert ai.conversations.reconcile() == 1
    for message_id, status in [(old, "failed"), (young, "streaming")]:
        with app.app_context():
            message = ai.db.session.get(ai.Message, message_id)
            assert message.status == status
            assert message.content == "half an ans"
    assert message.meta.get("reason") is None
    with app.app_context():
        assert ai.db.session.get(ai.Message, old).meta["reason"] == "interrupted"

    runner = app.test_cli_runner()
    result = runner.invoke(args=["ai-sse", "reconcile"])
    assert result.exit_code == 0 and "Marked 0 " in result.output
    result = runner.invoke(args=["ai-sse", "reconcile", "--older-than", "0"])
    assert result.exit_code == 0 and "Marked 1 " in result.output


@pytest.mark.parametrize("on_start", [True, False])
def test_reconcile_on_start_runs_before_the_first_request(
    make_db_app: Make, on_start: bool
) -> None:
    app, ai, _ = make_db_app(AI_SSE_STREAM_TIMEOUT=60, AI_SSE_RECONCILE_ON_START=on_start)
    message_id = _streaming_message(app, ai, age=120)
    app.test_client().get("/ai/conversations", headers=OWNER)
    with app.app_context():
        status = ai.db.session.get(ai.Message, message_id).status
    assert status == ("failed" if on_start else "streaming")


def test_ask_stream_with_a_conversation_in_a_custom_view(make_db_app: Make) -> None:
    app, ai, provider = make_db_app("First answer.", "Second answer.")

    @app.post("/chat/<cid>")
    def chat(cid: str) -> Any:
        conversation = ai.conversations.get(cid)
        return ai.ask_stream(
            request.json["prompt"], conversation=conversation, message_meta={"ui": "v2"}
        )

    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    first = collect(client.post(f"/chat/{cid}", json={"prompt": "one"}, headers=OWNER).response)
    assert first.start["conversation_id"] == cid
    assert ended(app, ai, first.start["message_id"]).status == "completed"
    second = collect(client.post(f"/chat/{cid}", json={"prompt": "two"}, headers=OWNER).response)
    message = ended(app, ai, second.start["message_id"])
    assert (message.content, message.meta["ui"]) == ("Second answer.", "v2")
    assert provider.requests[-1].messages == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "two"},
    ]
    assert "message_meta" not in provider.requests[-1].options
    assert (
        client.post(f"/chat/{cid}", json={"prompt": "x"}, headers={"X-Owner": "bob"}).status_code
        == 404
    )


def test_history_budget_trims_the_context(make_db_app: Make) -> None:
    app, ai, provider = make_db_app("a1", "a2", "a3", AI_SSE_HISTORY_MAX_MESSAGES=2)
    client = app.test_client()
    cid = client.post("/ai/conversations", json={"system": "Sys."}, headers=OWNER).json["id"]
    for prompt in ("u1", "u2", "u3"):
        body = {"prompt": prompt, "conversation_id": cid}
        result = collect(client.post("/ai/stream", json=body, headers=OWNER).response)
        ended(app, ai, result.start["message_id"])
    assert [m["content"] for m in provider.requests[-1].messages] == ["Sys.", "u2", "a2", "u3"]


def test_a_refused_upstream_call_marks_the_answer_failed(make_db_app: Make) -> None:
    refused = ProviderStatusError(provider="fake", upstream_status=500)
    app, _, _ = make_db_app(FakeReply(fail_before=refused))
    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    resp = client.post("/ai/stream", json={"prompt": "hi", "conversation_id": cid}, headers=OWNER)
    assert resp.status_code == 502 and resp.json["error"]["type"] == "provider_error"
    messages = client.get(f"/ai/conversations/{cid}", headers=OWNER).json["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "completed"),
        ("assistant", "failed"),
    ]
    assert messages[1]["meta"]["error"]["type"] == "provider_error"


def test_sentence_mode_still_stores_the_whole_answer(make_db_app: Make) -> None:
    app, ai, _ = make_db_app("One. Two three", AI_SSE_SENTENCE_MODE=True)
    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    body = {"prompt": "hi", "conversation_id": cid}
    result = collect(client.post("/ai/stream", json=body, headers=OWNER).response)
    assert result.text == "One. Two three"
    assert ended(app, ai, result.start["message_id"]).content == "One. Two three"


def test_without_db_a_conversation_id_is_refused(app: Flask) -> None:
    resp = app.test_client().post("/ai/stream", json={"prompt": "hi", "conversation_id": "abc"})
    assert resp.status_code == 400
    assert resp.json["error"]["type"] == "conversations_disabled"
    assert app.test_client().get("/ai/conversations/abc").status_code == 404
    with app.app_context(), pytest.raises(RuntimeError):
        app.extensions["ai_sse"].extension.conversations  # noqa: B018


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "kind"),
    [
        ("POST", "/ai/conversations", {"json": {"title": "x" * 300}}, 400, "too_long"),
        ("POST", "/ai/conversations", {"json": {"title": 5}}, 400, "invalid_type"),
        ("POST", "/ai/conversations", {"json": {"system": []}}, 400, "invalid_type"),
        ("POST", "/ai/conversations", {"json": [1]}, 400, "invalid_body"),
        ("PATCH", "/ai/conversations/{cid}", {"json": {}}, 400, "missing_title"),
        (
            "PATCH",
            "/ai/conversations/{cid}",
            {"data": "{", "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        ("GET", "/ai/conversations?limit=0", {}, 400, "out_of_range"),
        ("GET", "/ai/conversations?offset=x", {}, 400, "invalid_type"),
        ("GET", "/ai/conversations/nope", {}, 404, "not_found"),
    ],
)
def test_bad_requests_get_json_errors(
    make_db_app: Make, method: str, path: str, kwargs: dict[str, Any], status: int, kind: str
) -> None:
    app, _, _ = make_db_app()
    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    resp = client.open(path.format(cid=cid), method=method, headers=OWNER, **kwargs)
    assert resp.status_code == status
    assert resp.json["error"]["type"] == kind


def test_the_documented_custom_view_pattern(make_db_app: Make) -> None:
    app, ai, provider = make_db_app("Found it.")

    @app.post("/agent/<cid>")
    def agent(cid: str) -> Any:
        ai.conversations.add_message(cid, "user", request.json["prompt"])
        answer = ai.conversations.start_message(cid, meta={"tool": "search"})

        def events() -> Any:
            with answer:
                for chunk in ai.stream(messages=ai.conversations.history(cid)):
                    if chunk.kind == "text":
                        answer.append(chunk.text)
                        yield {"content": chunk.text}

        return ai.event_stream(events())

    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    result = collect(client.post(f"/agent/{cid}", json={"prompt": "find"}, headers=OWNER).response)
    assert result.text == "Found it."
    assert provider.requests[-1].messages == [{"role": "user", "content": "find"}]
    messages = client.get(f"/ai/conversations/{cid}", headers=OWNER).json["messages"]
    assert [(m["role"], m["content"], m["status"]) for m in messages] == [
        ("user", "find", "completed"),
        ("assistant", "Found it.", "completed"),
    ]
    assert messages[1]["meta"]["tool"] == "search"


def test_ask_with_a_conversation_is_stored_too(make_db_app: Make) -> None:
    app, ai, provider = make_db_app("Streamed.", "Asked.")
    client = app.test_client()
    cid = client.post("/ai/conversations", headers=OWNER).json["id"]
    body = {"prompt": "one", "conversation_id": cid}
    streamed = collect(client.post("/ai/stream", json=body, headers=OWNER).response)
    ended(app, ai, streamed.start["message_id"])
    answer = client.post("/ai/ask", json={"prompt": "two", "conversation_id": cid}, headers=OWNER)
    assert answer.json["text"] == "Asked."
    assert [m["content"] for m in provider.requests[-1].messages] == ["one", "Streamed.", "two"]
    messages = client.get(f"/ai/conversations/{cid}", headers=OWNER).json["messages"]
    assert [(m["content"], m["status"]) for m in messages[2:]] == [
        ("two", "completed"),
        ("Asked.", "completed"),
    ]
    assert messages[3]["meta"]["finish_reason"] == "stop" and "stream_id" not in messages[3]["meta"]
    other = client.post("/ai/ask", json=body, headers={"X-Owner": "bob"})
    assert other.status_code == 404


def test_rows_inserted_before_a_streaming_answer_read_before_it(make_db_app: Make) -> None:
    """A tool step's rows come after the answer row in ids and before it in every reading."""
    app, ai, _ = make_db_app()
    with app.test_request_context(headers=OWNER):
        cid = ai.conversations.create().id
        answer, _ = ai.conversations.start_turn(cid, [{"role": "user", "content": "Hi"}])
        answer.append("Let me look.")
        calls = [{"id": "c1", "name": "look", "arguments": {}}]
        step = {"role": "assistant", "meta": {"tool_calls": calls}}
        step_id = answer.insert_before(step, take_text=True)
        tool = {"role": "tool", "content": "found", "meta": {"tool_call_id": "c1"}}
        tool_id = answer.insert_before(tool)
        answer.append("Found it.")
        answer.complete()
        assert answer.id < step_id < tool_id
        expected = [
            ("user", "Hi"),
            ("assistant", "Let me look."),
            ("tool", "found"),
            ("assistant", "Found it."),
        ]
        rows = ai.conversations.messages(cid)
        assert [(m.role, m.content) for m in rows] == expected
        assert rows[1].meta == {"tool_calls": calls, "answer_id": answer.id}
        conversation = ai.db.session.get(ai.Conversation, cid)
        assert [(m.role, m.content) for m in conversation.messages] == expected
        history = ai.conversations.history(cid)
        assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
        assert history[1]["tool_calls"] == calls and history[2]["tool_call_id"] == "c1"
