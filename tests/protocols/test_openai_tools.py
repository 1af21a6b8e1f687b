"""``/v1/chat/completions`` takes the whole Chat Completions body: the official ``openai``
SDK against a real gunicorn gevent server (``tests/apps/tools_app.py``) that streams from
the OpenAI mock upstream. What the client sees is read through the SDK; what went
upstream, from the mock."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_ai_sse.testing.upstream import MockReply, MockToolCall, OpenAIMock

pytestmark = pytest.mark.server
openai = pytest.importorskip("openai")

KEY = "sk-test-openai-tools-0123"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
PICK = {
    "type": "function",
    "function": {
        "name": "pick_color",
        "description": "Ask the user to pick a color.",
        "parameters": {"type": "object", "properties": {"hint": {"type": "string"}}},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


class Stack:
    def __init__(self, mock: OpenAIMock, client: Any, marker: Path) -> None:
        self.mock, self.client, self.marker = mock, client, marker

    def bodies(self) -> list[dict[str, Any]]:
        return [r.json for r in self.mock.requests]

    def create(self, **kwargs: Any) -> Any:
        return self.client.chat.completions.create(model="gpt-4o-mini", **kwargs)


@pytest.fixture(scope="module")
def stack(module_gunicorn: Any, tmp_path_factory: Any) -> Iterator[Stack]:
    marker = tmp_path_factory.mktemp("openai-tools") / "marker"
    with OpenAIMock(api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": "openai",
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MODEL": "gpt-4o-mini",
                "AI_SSE_MAX_RETRIES": 0,
                "AI_SSE_READ_TIMEOUT": 5,
                "AI_SSE_KEEPALIVE": 1,
                "AI_SSE_MAX_IMAGE_BYTES": 1000,
                "AI_SSE_MAX_STEPS": 3,
                "TOOL_MARKER": str(marker),
            },
            app="tests.apps.tools_app:create_app()",
        )
        client = openai.OpenAI(base_url=f"{server.url}/ai/v1", api_key="unused", max_retries=0)
        yield Stack(mock, client, marker)
        server.stop()


@pytest.fixture(autouse=True)
def fresh(stack: Stack) -> Iterator[None]:
    stack.mock.requests.clear()
    stack.marker.unlink(missing_ok=True)
    yield
    assert stack.mock.wait_for_open_streams(0, timeout=10), stack.mock.stats()


def streamed(stack: Stack, **kwargs: Any) -> tuple[list[Any], str, list[Any]]:
    """``(chunks, text, tool calls)`` of a streamed call, assembled as the SDK docs do."""
    chunks = list(stack.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            if delta.function is not None:
                call["name"] += delta.function.name or ""
                call["arguments"] += delta.function.arguments or ""
    return chunks, text, [calls[i] for i in sorted(calls)]


def finish(chunks: list[Any]) -> str:
    return [c.choices[0].finish_reason for c in chunks if c.choices][-1]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_client_tool_round_trip(stack: Stack, stream: bool) -> None:
    call = MockToolCall("pick_color", {"hint": "warm"}, id="call_p", pieces=3)
    stack.mock.script(
        MockReply(text="", tool_calls=[call], finish_reason="tool_calls"),
        MockReply(text="Red it is."),
    )
    ask = [{"role": "user", "content": "Pick a color"}]
    if stream:
        chunks, text, calls = streamed(stack, messages=ask, tools=[PICK])
        assert finish(chunks) == "tool_calls" and text == ""
        assert calls == [{"id": "call_p", "name": "pick_color", "arguments": '{"hint": "warm"}'}]
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {k: c[k] for k in ("name", "arguments")},
                }
                for c in calls
            ],
        }
    else:
        first = stack.create(messages=ask, tools=[PICK])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        (got,) = choice.message.tool_calls
        assert (got.id, got.function.name) == ("call_p", "pick_color")
        assert json.loads(got.function.arguments) == {"hint": "warm"}
        assistant = choice.message.model_dump(exclude_none=True)
    # Offered upstream: the server's AI_SSE_TOOLS and the client's tool, never "danger".
    offered = [t["function"]["name"] for t in stack.bodies()[0]["tools"]]
    assert offered == ["get_order", "slow_lookup", "boom", "pick_color"]
    assert not stack.marker.exists()  # nothing ran on the server

    history = [*ask, assistant, {"role": "tool", "tool_call_id": "call_p", "content": "red"}]
    if stream:
        chunks, text, calls = streamed(stack, messages=history, tools=[PICK])
        assert (text, calls, finish(chunks)) == ("Red it is.", [], "stop")
    else:
        second = stack.create(messages=history, tools=[PICK]).choices[0]
        assert (second.message.content, second.finish_reason) == ("Red it is.", "stop")
        assert second.message.tool_calls is None
    sent = stack.bodies()[1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "call_p"
    assert json.loads(sent[-2]["tool_calls"][0]["function"]["arguments"]) == {"hint": "warm"}
    assert sent[-1] == {"role": "tool", "tool_call_id": "call_p", "content": "red"}


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_a_server_tool_runs_inside_one_call_unseen(stack: Stack, stream: bool) -> None:
    order = MockToolCall("get_order", {"order_id": "A-1"}, id="call_a")
    stack.mock.script(
        MockReply(text="Checking. ", tool_calls=[order], finish_reason="tool_calls"),
        MockReply(text="It has shipped."),
    )
    ask = [{"role": "user", "content": "Where is A-1?"}]
    if stream:
        chunks, text, calls = streamed(stack, messages=ask, stream_options={"include_usage": True})
        assert (text, calls, finish(chunks)) == ("Checking. It has shipped.", [], "stop")
        assert chunks[-1].usage.prompt_tokens == 20  # both steps
    else:
        whole = stack.create(messages=ask).choices[0]
        assert whole.message.content == "Checking. It has shipped."
        assert (whole.message.tool_calls, whole.finish_reason) == (None, "stop")
    tool = stack.bodies()[1]["messages"][-1]
    assert tool["role"] == "tool" and json.loads(tool["content"])["status"] == "shipped"


def test_a_client_cannot_define_a_server_tool_or_run_an_unoffered_one(stack: Stack) -> None:
    shadow = {"type": "function", "function": {"name": "get_order", "parameters": {}}}
    with pytest.raises(openai.BadRequestError) as info:
        stack.create(messages=[{"role": "user", "content": "hi"}], tools=[shadow])
    assert (info.value.code, info.value.body["param"]) == ("invalid_tools", "tools")
    # A client definition named like a registered, unoffered tool stays a client tool.
    danger = {"type": "function", "function": {"name": "danger"}}
    call = MockToolCall("danger", {}, id="call_d")
    stack.mock.script(MockReply(text="", tool_calls=[call], finish_reason="tool_calls"))
    got = stack.create(messages=[{"role": "user", "content": "hi"}], tools=[danger])
    assert got.choices[0].finish_reason == "tool_calls"
    assert not stack.marker.exists()  # "danger" would have written it


def test_tool_choice_reaches_the_provider(stack: Stack) -> None:
    stack.mock.script(MockReply(text="ok"), MockReply(text="ok"))
    forced = {"type": "function", "function": {"name": "pick_color"}}
    stack.create(messages=[{"role": "user", "content": "x"}], tools=[PICK], tool_choice=forced)
    stack.create(messages=[{"role": "user", "content": "x"}], tools=[PICK], tool_choice="none")
    first, second = stack.bodies()
    assert first["tool_choice"] == forced
    assert second["tool_choice"] == "none"
    with pytest.raises(openai.BadRequestError) as info:
        stack.create(
            messages=[{"role": "user", "content": "x"}],
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert info.value.code == "invalid_tools"


def test_images_by_url_and_data_reach_the_upstream(stack: Stack) -> None:
    stack.mock.script(MockReply(text="A cat."))
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    got = stack.create(messages=[{"role": "user", "content": parts}])
    assert got.choices[0].message.content == "A cat."
    sent = stack.bodies()[0]["messages"][-1]["content"]
    assert sent == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64," + base64.b64encode(b"\0" * 1200).decode(), "image_too_large"),
        ("file:///etc/passwd", "invalid_url"),
        ("data:image/tiff;base64,AAAA", "invalid_media_type"),
        ("data:image/png,rawbytes", "invalid_url"),
    ],
)
def test_images_obey_the_same_limits(stack: Stack, url: str, code: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}
    with pytest.raises(openai.BadRequestError) as info:
        stack.create(messages=[{"role": "user", "content": [part]}])
    assert info.value.code == code
    assert stack.bodies() == []


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_response_format_json_schema(stack: Stack, stream: bool) -> None:
    answer = '{"city": "Oslo", "temp": 3}'
    stack.mock.script(MockReply(text=answer))
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": SCHEMA, "strict": True},
    }
    ask = {
        "messages": [{"role": "user", "content": "Weather?"}],
        "response_format": response_format,
    }
    if stream:
        chunks, text, _ = streamed(stack, **ask)
        assert (text, finish(chunks)) == (answer, "stop")
    else:
        assert stack.create(**ask).choices[0].message.content == answer
    sent = stack.bodies()[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == SCHEMA


def test_invalid_structured_output_is_an_error(stack: Stack) -> None:
    stack.mock.script(MockReply(text='{"city": "Oslo"}'))
    response_format = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}
    with pytest.raises(openai.APIError) as info:
        stack.create(messages=[{"role": "user", "content": "x"}], response_format=response_format)
    assert info.value.code == "invalid_output"


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"top_p": 0.5}, "top_p", "unsupported_parameter"),
        ({"stop": ["\n"]}, "stop", "unsupported_parameter"),
        ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_parameter"),
        ({"n": 2}, "n", "out_of_range"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls", "invalid_type"),
        ({"tool_choice": "auto", "tools": "x"}, "tools", "invalid_tools"),
        ({"max_completion_tokens": 0}, "max_tokens", "out_of_range"),
    ],
)
def test_what_cannot_be_honoured_is_a_400(stack: Stack, extra: dict, param: str, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.create(messages=[{"role": "user", "content": "hi"}], **extra)
    assert (info.value.code, info.value.body["param"]) == (code, param)
    assert stack.bodies() == []


def test_harmless_fields_are_accepted(stack: Stack) -> None:
    stack.mock.script(MockReply(text="ok"))
    got = stack.create(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "hi"},
        ],
        user="u-1",
        metadata={"k": "v"},
        max_completion_tokens=50,
        temperature=0.2,
    )
    assert got.choices[0].message.content == "ok"
    body = stack.bodies()[0]
    assert (body["temperature"], body["messages"][0]["role"]) == (0.2, "system")
