"""Parts and tool messages: validation, and each adapter's translation (pure)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from flask_ai_sse._parts import PartLimits
from flask_ai_sse._validation import Limits, validate, validate_body
from flask_ai_sse.chunks import ChatRequest, ToolSpec
from flask_ai_sse.errors import ValidationError
from flask_ai_sse.providers import anthropic, gemini, openai

LIMITS = Limits(parts=PartLimits(max_parts=3, max_image_bytes=10, max_total_image_bytes=15))
CALL = {"id": "c1", "name": "get_order", "arguments": {"order_id": "A1"}}
B64 = base64.b64encode(b"12345678").decode()


def check(messages: Any, **kw: Any) -> Any:
    return validate(messages=messages, limits=LIMITS, default_model="m", **kw)


def test_tool_messages_and_calls_are_accepted() -> None:
    params = check(
        [
            {"role": "user", "content": "Where is A1?"},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        ]
    )
    assert params.messages[1] == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    assert params.messages[2]["tool_call_id"] == "c1"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ({"role": "tool", "content": "x"}, "invalid_tool_message"),
        ({"role": "tool", "tool_call_id": "", "content": "x"}, "invalid_tool_message"),
        ({"role": "tool", "tool_call_id": "c" * 129, "content": "x"}, "invalid_tool_message"),
        ({"role": "assistant", "tool_calls": []}, "invalid_tool_message"),
        (
            {"role": "assistant", "tool_calls": [{**CALL, "arguments": "{}"}]},
            "invalid_tool_message",
        ),
        (
            {"role": "assistant", "tool_calls": [{**CALL, "name": "bad name"}]},
            "invalid_tool_message",
        ),
        ({"role": "assistant", "tool_calls": [{**CALL, "id": 5}]}, "invalid_tool_message"),
        ({"role": "user", "content": [{"type": "text"}]}, "invalid_part"),
        ({"role": "user", "content": [{"type": "text", "text": "x"}] * 4}, "too_many_parts"),
        ({"role": "user", "content": []}, "empty_value"),
        ({"role": "user", "content": 5}, "invalid_type"),
        ({"role": "user", "content": ["x"]}, "invalid_part"),
        (
            {"role": "user", "content": [{"type": "image", "url": "https://x/y", "data": B64}]},
            "invalid_part",
        ),
        (
            {"role": "user", "content": [{"type": "image", "url": "ftp://x/y.png"}]},
            "invalid_url",
        ),
        ({"role": "user", "content": [{"type": "image", "url": "https:///y"}]}, "invalid_url"),
    ],
)
def test_bad_messages(message: dict[str, Any], kind: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check([{"role": "user", "content": "hi"}, message])
    assert caught.value.type == kind


def test_image_byte_limits_count_decoded_bytes() -> None:
    part = {"type": "image", "data": B64, "media_type": "image/png"}  # 8 bytes
    check([{"role": "user", "content": [part]}])
    with pytest.raises(ValidationError) as caught:
        check([{"role": "user", "content": [part]}, {"role": "user", "content": [part]}])
    assert caught.value.type == "image_too_large"  # 16 > 15 over the whole request


def test_body_fields_for_tools() -> None:
    params = validate_body(
        {"prompt": "x", "tools": ["a"], "tool_choice": "required", "schema": {"type": "object"}},
        LIMITS,
        "m",
    )
    assert (params.requested_tools, params.tool_choice, params.schema) == (
        ["a"],
        "required",
        {"type": "object"},
    )
    for body in (
        {"prompt": "x", "tools": "a"},
        {"prompt": "x", "tools": [{"name": "a"}]},  # a client cannot define tools
        {"prompt": "x", "tool_choice": "bad choice!"},
        {"prompt": "x", "schema": []},
    ):
        with pytest.raises(ValidationError) as caught:
            validate_body(body, LIMITS, "m")
        assert caught.value.type == "invalid_tools"


REQUEST = ChatRequest(
    messages=[
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "", "tool_calls": [CALL, {**CALL, "id": "c2"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'},
    ],
    model="m",
    tools=[ToolSpec("get_order", "Look up.", {"type": "object", "properties": {}})],
)


def test_openai_translation() -> None:
    out = [openai.message(m) for m in REQUEST.messages]
    assert out[1]["content"] is None  # an assistant turn with only calls
    assert out[1]["tool_calls"][1]["function"]["arguments"] == '{"order_id": "A1"}'
    assert out[3] == {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'}
    for choice, sent in [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_order", {"type": "function", "function": {"name": "get_order"}}),
    ]:
        body: dict[str, Any] = {}
        openai.add_tools(body, ChatRequest(messages=[], model="m", tool_choice=choice))
        assert body["tool_choice"] == sent


def test_anthropic_translation() -> None:
    failed = {"role": "tool", "tool_call_id": "c1", "content": '{"error": {"type": "x"}}'}
    (turn,) = anthropic.to_messages([failed])
    assert turn["content"][0]["is_error"] is True
    out = anthropic.to_messages(REQUEST.messages)
    assert "is_error" not in out[2]["content"][1]
    assert [m["role"] for m in out] == ["user", "assistant", "user"]  # results in one turn
    assert [b["tool_use_id"] for b in out[2]["content"]] == ["c1", "c2"]
    assert out[1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "get_order",
        "input": {"order_id": "A1"},
    }
    for choice, sent in [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("get_order", {"type": "tool", "name": "get_order"}),
    ]:
        body: dict[str, Any] = {}
        anthropic.add_tools(body, ChatRequest(messages=[], model="m", tool_choice=choice))
        assert body["tool_choice"] == sent


def test_gemini_translation() -> None:
    out = gemini.contents(REQUEST.messages)
    assert [c["role"] for c in out] == ["user", "model", "user"]
    responses = [p["functionResponse"] for p in out[2]["parts"]]
    assert responses == [
        {"id": "c1", "name": "get_order", "response": {"result": "r1"}},
        {"id": "c2", "name": "get_order", "response": {"ok": True}},
    ]
    parts = gemini.contents(
        [{"role": "user", "content": [{"type": "image", "url": "https://x/cat.webp"}]}]
    )[0]["parts"]
    assert parts == [{"fileData": {"mimeType": "image/webp", "fileUri": "https://x/cat.webp"}}]
    for choice, sent in [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        ("get_order", {"mode": "ANY", "allowedFunctionNames": ["get_order"]}),
    ]:
        body: dict[str, Any] = {}
        gemini.add_tools(body, {}, ChatRequest(messages=[], model="m", tool_choice=choice))
        assert body["toolConfig"] == {"functionCallingConfig": sent}
