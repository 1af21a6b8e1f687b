"""A stream's tool steps stored as messages, on SQLite and PostgreSQL, over gunicorn.

Each step's assistant message with its calls and each tool result are rows of the
conversation, read before the answer row the stream wrote into; the next turn
sends them upstream in the provider's format, and a stream cancelled while a
tool runs leaves every stored call with a result.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import FORMATS, MockReply, MockToolCall

from ..helpers import open_stream, require_postgres, wait_until
from .test_server import KEY, ORDER, Stack, expect_tool_turn

pytestmark = pytest.mark.server

SLOW = MockToolCall("slow_lookup", {"query": "q"}, id="call_s")


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", "openai"),
        pytest.param(("postgres", "openai"), marks=pytest.mark.postgres),
        pytest.param(("postgres", "anthropic"), marks=pytest.mark.postgres),
        pytest.param(("postgres", "gemini"), marks=pytest.mark.postgres),
    ],
    ids=lambda p: "-".join(p),
)
def stack(
    request: pytest.FixtureRequest, module_gunicorn: Any, tmp_path_factory: Any
) -> Iterator[Stack]:
    database, name = request.param
    marker = tmp_path_factory.mktemp("steps") / "marker"
    url = require_postgres() if database == "postgres" else f"sqlite:///{marker.parent / 'c.db'}"
    prefix = f"t{secrets.token_hex(4)}_"
    with FORMATS[name](api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": mock.name,
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MAX_RETRIES": 0,
                "AI_SSE_READ_TIMEOUT": 5,
                "AI_SSE_KEEPALIVE": 1,
                "SLOW_SECONDS": 1.5,
                "TOOL_MARKER": str(marker),
                "SQLALCHEMY_DATABASE_URI": url,
                "AI_SSE_TABLE_PREFIX": prefix,
            },
            app="tests.apps.tools_app:create_app()",
        )
        yield Stack(mock, server.url, marker)
        server.stop()
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the app created them; PostgreSQL is shared
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}messages"))
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {prefix}conversations"))
    engine.dispose()


@pytest.fixture(autouse=True)
def fresh(stack: Stack) -> Iterator[None]:
    stack.mock.requests.clear()
    stack.marker.unlink(missing_ok=True)
    yield
    assert stack.mock.wait_for_open_streams(0, timeout=10), stack.mock.stats()


def conversation(stack: Stack) -> str:
    resp = requests.post(f"{stack.url}/ai/conversations", json={}, timeout=5)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def messages(stack: Stack, cid: str) -> list[dict[str, Any]]:
    resp = requests.get(f"{stack.url}/ai/conversations/{cid}", timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["messages"]  # type: ignore[no-any-return]


def run(stack: Stack, **body: Any) -> Any:
    resp = open_stream(f"{stack.url}/ai/stream", method="POST", json=body)
    assert resp.status_code == 200, resp.text
    return collect(resp.iter_content(chunk_size=None))


def test_tool_steps_are_rows_and_the_next_turn_replays_them(stack: Stack) -> None:
    cid = conversation(stack)
    stack.mock.script(
        MockReply(text="Checking.", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="It has shipped."),
        MockReply(text="You are welcome."),
    )
    first = run(stack, prompt="Where is A-1?", conversation_id=cid)
    start = next(e.json() for e in first.events if e.event == "start")
    call_id = next(e.json() for e in first.events if e.event == "tool_call")["id"]
    assert first.text == "Checking.It has shipped."  # what the browser saw, in one message

    stored = messages(stack, cid)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "Where is A-1?", "completed"),
        ("assistant", "Checking.", "completed"),
        ("tool", json.dumps({"order_id": "A-1", "status": "shipped"}), "completed"),
        ("assistant", "It has shipped.", "completed"),
    ]
    user, calls, result, answer = stored
    assert answer["id"] == start["message_id"]  # the row the stream was announced as
    assert calls["meta"]["tool_calls"] == [
        {"id": call_id, "name": "get_order", "arguments": {"order_id": "A-1"}}
    ]
    assert (result["meta"]["tool_call_id"], result["meta"]["name"]) == (call_id, "get_order")
    # created after the answer row, read before it
    assert user["id"] < answer["id"] < calls["id"] < result["id"]
    assert calls["meta"]["answer_id"] == result["meta"]["answer_id"] == answer["id"]
    assert "tool_turns" not in answer["meta"] and "tool_calls" not in answer["meta"]

    second = run(stack, prompt="Thanks!", conversation_id=cid)
    assert second.text == "You are welcome."
    body = stack.mock.requests[2].json  # the second turn's request
    key = "contents" if stack.name == "gemini" else "messages"
    sent = body[key]
    assert len(sent) == 5
    expect_tool_turn(stack.name, {key: sent[:3]}, call_id)
    if stack.name == "gemini":
        assert [c["parts"] for c in (sent[0], sent[3], sent[4])] == [
            [{"text": "Where is A-1?"}],
            [{"text": "It has shipped."}],
            [{"text": "Thanks!"}],
        ]
    else:
        assert [(m["role"], m["content"]) for m in (sent[0], sent[3], sent[4])] == [
            ("user", "Where is A-1?"),
            ("assistant", "It has shipped."),
            ("user", "Thanks!"),
        ]
    assert [m["role"] for m in messages(stack, cid)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]


def test_a_cancel_during_a_tool_leaves_every_stored_call_answered(stack: Stack) -> None:
    cid = conversation(stack)
    stack.mock.script(
        MockReply(text="Looking.", tool_calls=[ORDER, SLOW], finish_reason="tool_calls"),
        MockReply(text="Next."),  # the next turn's (step 2 is never opened)
    )
    resp = open_stream(
        f"{stack.url}/ai/stream", method="POST", json={"prompt": "x", "conversation_id": cid}
    )
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    body = resp.iter_content(chunk_size=None)
    for chunk in body:  # get_order answers at once; slow_lookup is still running
        events += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
        if any(e.event == "tool_result" for e in events):
            break
    start = events[0].json()
    cancel = requests.post(f"{stack.url}/ai/streams/{start['stream_id']}/cancel", timeout=5)
    assert cancel.status_code == 202
    for chunk in body:
        events += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
    done = [e.json() for e in events if e.event == "done"]
    assert done and done[0]["finish_reason"] == "cancelled"
    calls = {e.json()["name"]: e.json()["id"] for e in events if e.event == "tool_call"}

    # the end state is written before [DONE]: no waiting needed
    stored = messages(stack, cid)
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "completed"),
        ("assistant", "completed"),
        ("tool", "completed"),
        ("tool", "cancelled"),
        ("assistant", "cancelled"),
    ]
    _, step, fast, slow, answer = stored
    assert answer["id"] == start["message_id"]
    assert (step["content"], answer["content"]) == ("Looking.", "")
    assert [c["id"] for c in step["meta"]["tool_calls"]] == [
        calls["get_order"],
        calls["slow_lookup"],
    ]
    assert fast["meta"]["tool_call_id"] == calls["get_order"]
    assert slow["meta"]["tool_call_id"] == calls["slow_lookup"]
    assert slow["meta"]["error"]["type"] == "cancelled"
    assert json.loads(slow["content"])["error"]["type"] == "cancelled"

    # the slow tool's late result changes nothing
    wait_until(stack.marker.exists, what="the slow tool to finish")
    assert messages(stack, cid) == stored
    assert len(stack.mock.requests) == 1

    # the next turn carries the call with both its results
    assert run(stack, prompt="And now?", conversation_id=cid).text == "Next."
    body = stack.mock.requests[1].json
    sent = json.dumps(body["contents" if stack.name == "gemini" else "messages"])
    results = {
        "openai": '"role": "tool"',
        "anthropic": '"tool_result"',
        "gemini": "functionResponse",
    }
    assert sent.count(results[stack.name]) == 2
    assert "Looking." in sent and "The stream ended before the tool finished." in sent
