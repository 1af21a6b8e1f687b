"""``POST /chat`` takes the tool parts of UIMessages back: a client-side tool round trip
with the AI SDK's own transport (``tests/js/client_tool_turn.mjs``) against a real
gunicorn server and the OpenAI mock upstream; and the conversion itself, part by part."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_ai_sse._ui_messages import ui_message
from flask_ai_sse.errors import ValidationError
from flask_ai_sse.testing.upstream import MockReply, MockToolCall, OpenAIMock

from .test_sdks import JS, node

KEY = "sk-test-chat-tools-0123"


@pytest.fixture(scope="module")
def stack(module_gunicorn: Any, tmp_path_factory: Any) -> Iterator[tuple[OpenAIMock, str]]:
    db = tmp_path_factory.mktemp("chat-tools") / "chat.db"
    with OpenAIMock(api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": "openai",
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MAX_RETRIES": 0,
                "AI_SSE_READ_TIMEOUT": 5,
                "AI_SSE_TOOLS": ["get_order", "pick_color"],
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db}",
            },
            app="tests.apps.tools_app:create_app()",
        )
        yield mock, server.url
        server.stop()


@pytest.mark.server
def test_use_chat_client_tool_round_trip(stack: tuple[OpenAIMock, str]) -> None:
    mock, url = stack
    mock.script(
        MockReply(
            text="",
            tool_calls=[MockToolCall("get_order", {"order_id": "A-1"}, id="call_s")],
            finish_reason="tool_calls",
        ),
        MockReply(
            text="Which color?",
            tool_calls=[MockToolCall("pick_color", {"hint": "warm"}, id="call_c")],
            finish_reason="tool_calls",
        ),
        MockReply(text="Red it is."),
    )
    done = subprocess.run(
        [node(), "client_tool_turn.mjs"],
        cwd=JS,
        env={**os.environ, "AI_SSE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    tools = [(p["type"], p["state"]) for p in result["first"]["parts"] if "toolCallId" in p]
    assert tools == [
        ("tool-get_order", "output-available"),  # the server ran it
        ("tool-pick_color", "input-available"),  # the client must
    ]
    assert result["first"]["metadata"]["finish_reason"] == "tool_calls"
    texts = [p["text"] for p in result["second"]["parts"] if p["type"] == "text"]
    assert texts == ["Red it is."]

    third = [r.json for r in mock.requests][2]["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "tool", "assistant", "tool"]
    assert third[1]["tool_calls"][0]["id"] == "call_s"
    assert json.loads(third[2]["content"]) == {"order_id": "A-1", "status": "shipped"}
    assert third[3]["content"] == "Which color?"
    assert third[3]["tool_calls"][0]["function"]["name"] == "pick_color"
    assert third[4] == {"role": "tool", "tool_call_id": "call_c", "content": '{"color": "red"}'}


@pytest.mark.server
def test_a_stored_chat_takes_the_client_tool_result(stack: tuple[OpenAIMock, str]) -> None:
    """With ``conversation_id`` the stored conversation is the history: of the resent
    assistant message only the client's results are new (the JSON ``DefaultChatTransport``
    posts after ``addToolResult``)."""
    mock, url = stack
    mock.requests.clear()
    cid = requests.post(f"{url}/ai/conversations", json={}, timeout=5).json()["id"]
    call = MockToolCall("pick_color", {"hint": "warm"}, id="call_k")
    mock.script(
        MockReply(text="Which?", tool_calls=[call], finish_reason="tool_calls"),
        MockReply(text="Red it is."),
    )
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Pick"}]}
    body = {"id": "stored-chat", "messages": [user], "trigger": "submit-message"}
    first = requests.post(f"{url}/ai/chat", json={**body, "conversation_id": cid}, timeout=10)
    assert '"finishReason":"tool-calls"' in first.text
    assistant = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "text", "text": "Which?", "state": "done"},
            {
                "type": "tool-pick_color",
                "toolCallId": "call_k",
                "state": "output-available",
                "input": {"hint": "warm"},
                "output": "red",
            },
        ],
    }
    again = {**body, "messages": [user, assistant], "messageId": "a1", "conversation_id": cid}
    second = requests.post(f"{url}/ai/chat", json=again, timeout=10)
    assert second.status_code == 200
    chunks = [
        json.loads(line[6:]) for line in second.text.splitlines() if line.startswith("data: {")
    ]
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Red it is."
    sent = mock.requests[1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == "call_k"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_k", "content": "red"}


def test_tool_parts_become_calls_and_results_step_by_step() -> None:
    message = {
        "id": "a1",
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "Hmm."},
            {"type": "text", "text": "Looking."},
            {
                "type": "tool-get_order",
                "toolCallId": "c1",
                "state": "output-available",
                "input": {"order_id": "A-1"},
                "output": {"status": "shipped"},
            },
            {
                "type": "dynamic-tool",
                "toolName": "lookup",
                "toolCallId": "c2",
                "state": "output-error",
                "input": {},
                "errorText": "No.",
            },
            {"type": "step-start"},
            {"type": "text", "text": "Pick."},
            {"type": "tool-pick", "toolCallId": "c3", "state": "output-denied", "input": {}},
            {"type": "tool-later", "toolCallId": "c4", "state": "input-available", "input": {}},
        ],
    }
    assert ui_message(message, 0) == [
        {
            "role": "assistant",
            "content": "Looking.",
            "tool_calls": [
                {"id": "c1", "name": "get_order", "arguments": {"order_id": "A-1"}},
                {"id": "c2", "name": "lookup", "arguments": {}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "tool", "tool_call_id": "c2", "content": '{"error": "No."}'},
        {
            "role": "assistant",
            "content": "Pick.",
            "tool_calls": [{"id": "c3", "name": "pick", "arguments": {}}],
        },
        {
            "role": "tool",
            "tool_call_id": "c3",
            "content": '{"error": "The user denied this call."}',
        },
    ]


def test_user_image_files_become_image_parts() -> None:
    message = {
        "role": "user",
        "parts": [
            {"type": "text", "text": "What is it?"},
            {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAAA"},
            {"type": "file", "mediaType": "image/jpeg", "url": "https://example.com/a.jpg"},
        ],
    }
    assert ui_message(message, 0) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image", "data": "AAAA", "media_type": "image/png"},
                {"type": "image", "url": "https://example.com/a.jpg", "media_type": "image/jpeg"},
            ],
        }
    ]
    pdf = {"role": "user", "parts": [{"type": "file", "mediaType": "application/pdf", "url": "x"}]}
    with pytest.raises(ValidationError) as info:
        ui_message(pdf, 0)
    assert info.value.type == "unsupported_content"
