"""Tool calls and results in stored history: replayed whole, never cut apart."""

from __future__ import annotations

from typing import Any

from flask_ai_sse.persistence import HistoryBudget, trim_history
from flask_ai_sse.persistence.replay import (
    call_row,
    message_meta,
    pair_tool_calls,
    replay,
    result_row,
)

CALL = {"id": "c1", "name": "get_order", "arguments": {"order_id": "A1"}}


def m(role: str, content: str, **extra: Any) -> Any:
    return {"role": role, "content": content, **extra}


def test_a_tool_step_is_stored_as_rows_and_replayed() -> None:
    calls = call_row("Looking. ", [CALL])
    assert calls == {"role": "assistant", "content": "Looking. ", "meta": {"tool_calls": [CALL]}}
    ok = result_row({"id": "c1", "name": "get_order", "result": {"ok": True}})
    assert ok == {
        "role": "tool",
        "content": '{"ok": true}',
        "status": "completed",
        "meta": {"tool_call_id": "c1", "name": "get_order"},
    }
    failed = result_row({"id": "c2", "name": "boom", "error": {"type": "tool_error"}}, "failed")
    assert failed["content"] == '{"error": {"type": "tool_error"}}'
    assert failed["meta"]["error"] == {"type": "tool_error"}
    assert [
        *replay("assistant", calls["content"], calls["meta"]),
        *replay("tool", ok["content"], ok["meta"]),
        *replay("assistant", "Shipped.", {"answer_id": 3}),
    ] == [
        m("assistant", "Looking. ", tool_calls=[CALL]),
        m("tool", '{"ok": true}', tool_call_id="c1"),
        m("assistant", "Shipped."),
    ]
    assert replay("assistant", "", {"finish_reason": "cancelled"}) == []  # nothing said


def test_client_tool_calls_are_kept_for_the_next_turn() -> None:
    meta = {"tool_calls": [CALL]}  # an answer that ended asking the client to run CALL
    assert replay("assistant", "", meta) == [m("assistant", "", tool_calls=[CALL])]
    tool = m("tool", "blue", tool_call_id="c1")
    assert message_meta(tool) == {"tool_call_id": "c1"}
    assert replay("tool", "blue", {"tool_call_id": "c1"}) == [tool]


def test_parts_are_kept_in_meta() -> None:
    parts = [{"type": "text", "text": "What?"}, {"type": "image", "url": "https://x/y.png"}]
    meta = message_meta(m("user", parts))
    assert meta == {"parts": parts}
    assert replay("user", "What?", meta) == [m("user", parts)]


def test_unanswered_calls_and_orphan_results_are_dropped() -> None:
    other = {**CALL, "id": "c2"}
    messages = [
        m("user", "u"),
        m("assistant", "", tool_calls=[CALL, other]),
        m("tool", "r1", tool_call_id="c1"),
        m("tool", "stray", tool_call_id="zz"),
        m("assistant", "", tool_calls=[{**CALL, "id": "c3"}]),  # cancelled: no result
        m("assistant", "done"),
    ]
    assert pair_tool_calls(messages) == [
        m("user", "u"),
        m("assistant", "", tool_calls=[CALL]),
        m("tool", "r1", tool_call_id="c1"),
        m("assistant", "done"),
    ]


HISTORY = [
    m("user", "u1"),
    m("assistant", "", tool_calls=[CALL]),
    m("tool", "r1", tool_call_id="c1"),
    m("assistant", "a1"),
    m("user", "u2"),
    m("assistant", "a2"),
]


def test_the_trimmer_never_separates_a_call_from_its_result() -> None:
    new = [m("user", "u3")]
    for count in range(0, 8):
        sent = trim_history(HISTORY, new, HistoryBudget(max_messages=count))
        ids = [x.get("tool_call_id") for x in sent if x["role"] == "tool"]
        calls = [c["id"] for x in sent for c in x.get("tool_calls", ())]
        assert ids == calls, (count, sent)
        assert sent[0]["role"] == "user"
    # 4 messages fit: the tool unit (call, result, answer) would need the user before it
    assert trim_history(HISTORY, new, HistoryBudget(max_messages=4)) == [
        m("user", "u2"),
        m("assistant", "a2"),
        *new,
    ]
    assert trim_history(HISTORY, new, HistoryBudget(max_messages=6)) == [*HISTORY, *new]


def test_client_tool_turn_with_a_conversation(tmp_path: Any) -> None:
    """The client runs the tool and sends only its result: the stored call is replayed."""
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_ai_sse import AISSE
    from flask_ai_sse.testing import FakeProvider, FakeReply, FakeToolCall, collect

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = SQLAlchemy(app)
    provider = FakeProvider(
        script=[
            FakeReply(text="", tool_calls=[FakeToolCall("pick_color", {}, id="c9")]),
            FakeReply(text="Blue, then."),
        ],
        delay=0,
    )
    ai = AISSE(app, db=db, provider=provider)
    with app.app_context():
        db.create_all()
    pick = {"name": "pick_color", "parameters": {"type": "object", "properties": {}}}

    @app.post("/chat/<cid>")
    def chat(cid: str) -> Any:
        from flask import request

        return ai.ask_stream(messages=request.json, conversation=cid, tools=[pick])

    client = app.test_client()
    cid = client.post("/ai/conversations", json={}).json["id"]
    first = collect(
        client.post(f"/chat/{cid}", json=[{"role": "user", "content": "Pick a color"}]).response
    )
    assert [e.event for e in first.events].count("tool_call") == 1
    tool_turn = [{"role": "tool", "tool_call_id": "c9", "content": "blue"}]
    second = collect(client.post(f"/chat/{cid}", json=tool_turn).response)
    assert second.text == "Blue, then."
    assert provider.requests[1].messages == [
        m("user", "Pick a color"),
        m("assistant", "", tool_calls=[{"id": "c9", "name": "pick_color", "arguments": {}}]),
        m("tool", "blue", tool_call_id="c9"),
    ]


def test_ask_with_tools_and_a_conversation_stores_the_tool_turn(tmp_path: Any) -> None:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from flask_ai_sse import AISSE
    from flask_ai_sse.testing import FakeProvider, FakeReply, FakeToolCall

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = SQLAlchemy(app)
    provider = FakeProvider(
        script=[
            FakeReply(text="", tool_calls=[FakeToolCall("double", {"n": 4}, id="d1")]),
            FakeReply(text="Eight."),
            FakeReply(text="Yes."),
        ],
        delay=0,
    )
    ai = AISSE(app, db=db, provider=provider)

    @ai.tool
    def double(n: int) -> int:
        return 2 * n

    with app.app_context():
        db.create_all()
    from flask_ai_sse._validation import validate

    with app.test_request_context():
        cid = ai.conversations.create().id
        limits = ai.state().settings.limits
        first = validate(prompt="Double 4?", conversation_id=cid, limits=limits, default_model="m")
        first.requested_tools = ["double"]
        answer = ai.complete(first)  # what POST /ask does
        assert (answer.text, answer.steps) == ("Eight.", 2)
        ai.complete(validate(prompt="Sure?", conversation_id=cid, limits=limits, default_model="m"))
    assert provider.requests[2].messages == [
        m("user", "Double 4?"),
        m("assistant", "", tool_calls=[{"id": "d1", "name": "double", "arguments": {"n": 4}}]),
        m("tool", "8", tool_call_id="d1"),
        m("assistant", "Eight."),
        m("user", "Sure?"),
    ]
    with app.test_request_context():
        rows = [
            (r.role, r.content, r.meta.get("tool_call_id")) for r in ai.conversations.messages(cid)
        ]
    assert rows == [
        ("user", "Double 4?", None),
        ("assistant", "", None),
        ("tool", "8", "d1"),
        ("assistant", "Eight.", None),
        ("user", "Sure?", None),
        ("assistant", "Yes.", None),
    ]
