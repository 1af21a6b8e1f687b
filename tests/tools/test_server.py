"""Tools, images and structured output through the whole stack, for every provider format.

gunicorn's gevent worker runs ``tests/apps/tools_app.py``; it streams from a mock
upstream (in this process) that speaks OpenAI, Anthropic or Gemini. What the
browser gets is read on the wire; what the provider was sent, from the mock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import FORMATS, MockReply, MockToolCall, MockUpstream

from ..helpers import wait_until

pytestmark = pytest.mark.server

KEY = "sk-test-tools-0123456789"
ORDER = MockToolCall("get_order", {"order_id": "A-1"}, id="call_a")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()


class Stack:
    def __init__(self, mock: MockUpstream, url: str, marker: Path) -> None:
        self.mock, self.url, self.marker = mock, url, marker

    @property
    def name(self) -> str:
        return self.mock.name

    def bodies(self) -> list[dict[str, Any]]:
        return [r.json for r in self.mock.requests]


@pytest.fixture(scope="module", params=sorted(FORMATS))
def stack(
    request: pytest.FixtureRequest, module_gunicorn: Any, tmp_path_factory: Any
) -> Iterator[Stack]:
    marker = tmp_path_factory.mktemp("tools") / "marker"
    with FORMATS[request.param](api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": mock.name,
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MAX_RETRIES": 0,
                "AI_SSE_READ_TIMEOUT": 5,
                "AI_SSE_DISCONNECT_GRACE": 10,
                "AI_SSE_KEEPALIVE": 1,
                "AI_SSE_MAX_IMAGE_BYTES": 1000,
                "AI_SSE_MAX_IMAGES_BYTES": 1500,
                "AI_SSE_MAX_PARTS": 4,
                "SLOW_SECONDS": 1.5,
                "TOOL_MARKER": str(marker),
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{marker.parent / 'chat.db'}",
            },
            app="tests.apps.tools_app:create_app()",
        )
        yield Stack(mock, server.url, marker)
        server.stop()


@pytest.fixture(autouse=True)
def fresh(stack: Stack) -> Iterator[None]:
    stack.mock.requests.clear()
    stack.marker.unlink(missing_ok=True)
    yield
    assert stack.mock.wait_for_open_streams(0, timeout=10), stack.mock.stats()


def post(stack: Stack, path: str = "/ai/stream", **body: Any) -> requests.Response:
    return requests.post(f"{stack.url}{path}", json=body, stream=True, timeout=(3, 15))


def run(stack: Stack, **body: Any) -> Any:
    resp = post(stack, **body)
    assert resp.status_code == 200, resp.text
    return collect(resp.iter_content(chunk_size=None))


def kinds(result: Any) -> list[str]:
    """Event names with runs of the same name folded (text and deltas vary per format)."""
    out: list[str] = []
    for e in result.events:
        name = "[DONE]" if e.data == "[DONE]" else e.event
        if not out or out[-1] != name:
            out.append(name)
    return out


def data(result: Any, name: str) -> list[Any]:
    return [e.json() for e in result.events if e.event == name]


def test_two_step_tool_stream(stack: Stack) -> None:
    stack.mock.script(
        MockReply(text="Checking.", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="It has shipped."),
    )
    result = run(stack, prompt="Where is A-1?")
    assert kinds(result) == [
        "start",
        "message",
        "tool_call_delta",
        "tool_call",
        "tool_result",
        "message",
        "done",
        "[DONE]",
    ]
    ids = [int(e.id.rsplit(":", 1)[1]) for e in result.events if e.data != "[DONE]"]
    assert ids == list(range(1, len(ids) + 1))
    (call,) = data(result, "tool_call")
    call_id = call["id"]
    if stack.name != "gemini":  # Gemini sends no call ids: the adapter makes one
        assert call_id == "call_a"
    assert call == {"id": call_id, "name": "get_order", "arguments": {"order_id": "A-1"}}
    assert data(result, "tool_result") == [
        {
            "id": call_id,
            "name": "get_order",
            "result": {"order_id": "A-1", "status": "shipped"},
        }
    ]
    done = data(result, "done")[0]
    assert (done["finish_reason"], done["steps"]) == ("stop", 2)
    first, second = stack.bodies()
    assert done["usage"]["prompt_tokens"] == 20  # 10 per step, summed
    assert result.text == "Checking.It has shipped."
    expect_tools_offered(stack.name, first)
    expect_tool_turn(stack.name, second, call_id)


def expect_tools_offered(name: str, body: dict[str, Any]) -> None:
    if name == "openai":
        names = [t["function"]["name"] for t in body["tools"]]
        assert body["tools"][0]["type"] == "function"
        params = body["tools"][0]["function"]["parameters"]
    elif name == "anthropic":
        names = [t["name"] for t in body["tools"]]
        params = body["tools"][0]["input_schema"]
    else:
        (group,) = body["tools"]
        names = [t["name"] for t in group["functionDeclarations"]]
        params = group["functionDeclarations"][0]["parametersJsonSchema"]
    assert names == ["get_order", "slow_lookup", "boom"]  # AI_SSE_TOOLS; never "danger"
    assert params["properties"]["order_id"] == {
        "type": "string",
        "description": "The order's number.",
    }


def expect_tool_turn(name: str, body: dict[str, Any], call_id: str) -> None:
    """The second request carries the call and its result in the provider's own format."""
    result = {"order_id": "A-1", "status": "shipped"}
    if name == "openai":
        assistant, tool = body["messages"][-2:]
        assert assistant == {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id": "A-1"}'},
                }
            ],
        }
        assert tool == {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}
    elif name == "anthropic":
        assistant, user = body["messages"][-2:]
        assert assistant == {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": call_id,
                    "name": "get_order",
                    "input": {"order_id": "A-1"},
                },
            ],
        }
        assert user == {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": [{"type": "text", "text": json.dumps(result)}],
                }
            ],
        }
    else:
        model, user = body["contents"][-2:]
        assert model == {
            "role": "model",
            "parts": [
                {"text": "Checking."},
                {"functionCall": {"id": call_id, "name": "get_order", "args": {"order_id": "A-1"}}},
            ],
        }
        assert user == {
            "role": "user",
            "parts": [
                {"functionResponse": {"id": call_id, "name": "get_order", "response": result}}
            ],
        }


def test_resume_in_the_middle_of_step_two(stack: Stack) -> None:
    stack.mock.script(
        MockReply(text="", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="one two three four five six seven eight", delay=0.05),
    )
    resp = post(stack, prompt="x")
    decoder = SSEDecoder()
    seen: list[ServerSentEvent] = []
    after_result = False
    for chunk in resp.iter_content(chunk_size=None):
        for event in decoder.feed(chunk):
            assert isinstance(event, ServerSentEvent)
            seen.append(event)
            after_result = after_result or event.event == "tool_result"
        if after_result and sum(e.event == "message" for e in seen) >= 2:
            break
    resp.close()  # the client drops in the middle of step 2
    last = seen[-1].id
    stream_id = last.rsplit(":", 1)[0]
    rest = requests.get(
        f"{stack.url}/ai/streams/{stream_id}",
        headers={"Last-Event-ID": last},
        stream=True,
        timeout=(3, 15),
    )
    tail = collect(rest.iter_content(chunk_size=None))
    both = [e for e in seen + tail.events if e.data != "[DONE]"]
    ids = [int(e.id.rsplit(":", 1)[1]) for e in both]
    assert ids == list(range(1, len(ids) + 1))  # nothing lost, nothing repeated
    text = "".join(e.json()["content"] for e in both if e.event == "message")
    assert text == "one two three four five six seven eight"
    assert data(tail, "done")[0]["steps"] == 2
    assert len(stack.mock.requests) == 2  # no second generation


def test_a_second_reader_sees_the_same_steps(stack: Stack) -> None:
    stack.mock.script(
        MockReply(text="Checking.", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="one two three four five", delay=0.05),
    )
    resp = post(stack, prompt="x")
    body = resp.iter_content(chunk_size=None)
    decoder = SSEDecoder()
    first: list[ServerSentEvent] = []
    for chunk in body:
        first += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
        if any(e.event == "tool_result" for e in first):
            break
    stream_id = first[0].json()["stream_id"]
    second = requests.get(f"{stack.url}/ai/streams/{stream_id}", stream=True, timeout=(3, 15))
    other = collect(second.iter_content(chunk_size=None))
    for chunk in body:
        first += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
    assert [(e.id, e.event, e.data) for e in other.events] == [
        (e.id, e.event, e.data) for e in first
    ]
    assert len(stack.mock.requests) == 2


def test_cancel_during_a_slow_tool(stack: Stack) -> None:
    slow = MockToolCall("slow_lookup", {"query": "q"}, id="call_s")
    stack.mock.script(
        MockReply(text="", tool_calls=[slow], finish_reason="tool_calls"),
        MockReply(text="never sent"),
    )
    resp = post(stack, prompt="x")
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    body = resp.iter_content(chunk_size=None)
    for chunk in body:
        events += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
        if any(e.event == "tool_call" for e in events):
            break
    stream_id = events[0].json()["stream_id"]
    cancel = requests.post(f"{stack.url}/ai/streams/{stream_id}/cancel", timeout=5)
    assert cancel.status_code == 202
    for chunk in body:  # ends before the tool does
        events += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
    assert not stack.marker.exists()
    done = [e.json() for e in events if e.event == "done"]
    assert done and done[0]["finish_reason"] == "cancelled", [(e.event, e.data) for e in events]
    assert not any(e.event == "tool_result" for e in events)
    # the tool finishes later; its result is dropped and step 2 is never opened
    wait_until(stack.marker.exists, what="the slow tool to finish")
    assert len(stack.mock.requests) == 1


def test_raising_tool(stack: Stack) -> None:
    stack.mock.script(
        MockReply(
            text="", tool_calls=[MockToolCall("boom", {}, id="call_b")], finish_reason="tool_calls"
        ),
        MockReply(text="Sorry, that failed."),
    )
    resp = post(stack, prompt="x")
    raw = resp.content.decode()
    result = collect(raw.encode())
    (res,) = data(result, "tool_result")
    assert res["error"] == {"type": "tool_error", "message": "The tool failed (RuntimeError)."}
    assert "hunter2" not in raw and "hunter2" not in json.dumps(stack.bodies())
    assert data(result, "done")[0]["finish_reason"] == "stop"
    assert "tool_error" in json.dumps(stack.bodies()[1])  # the model saw the error


def test_bad_arguments_json(stack: Stack) -> None:
    if stack.name == "gemini":
        pytest.skip("Gemini sends arguments as an object: they cannot be broken JSON")
    broken = MockToolCall("get_order", '{"order_id": "A-', id="call_x")
    stack.mock.script(
        MockReply(text="", tool_calls=[broken], finish_reason="tool_calls"),
        MockReply(text="Let me retry."),
    )
    result = run(stack, prompt="x")
    (call,) = data(result, "tool_call")
    assert call == {"id": "call_x", "name": "get_order", "arguments": {}}
    (res,) = data(result, "tool_result")
    assert res["error"]["type"] == "invalid_arguments"
    assert data(result, "done")[0]["steps"] == 2


def test_client_tool(stack: Stack) -> None:
    pick = MockToolCall("pick_color", {"hint": "warm"}, id="call_p")
    stack.mock.script(MockReply(text="", tool_calls=[pick], finish_reason="tool_calls"))
    result = run_path(stack, "/client-tool", prompt="Pick one")
    (call,) = data(result, "tool_call")
    assert call["name"] == "pick_color" and call["arguments"] == {"hint": "warm"}
    assert data(result, "tool_result") == []
    done = data(result, "done")[0]
    assert (done["finish_reason"], done["steps"]) == ("tool_calls", 1)
    assert len(stack.mock.requests) == 1


def run_path(stack: Stack, path: str, **body: Any) -> Any:
    resp = post(stack, path, **body)
    assert resp.status_code == 200, resp.text
    return collect(resp.iter_content(chunk_size=None))


def test_tools_not_offered_on_the_routes(stack: Stack) -> None:
    for tools in (["danger"], ["get_order", "nope"]):
        resp = post(stack, prompt="x", tools=tools)
        assert resp.status_code == 400
        assert resp.json()["error"]["type"] == "tool_not_allowed"
    # a model calling a registered tool outside AI_SSE_TOOLS gets an error, nothing runs
    danger = MockToolCall("danger", {}, id="call_d")
    stack.mock.script(
        MockReply(text="", tool_calls=[danger], finish_reason="tool_calls"),
        MockReply(text="ok"),
    )
    result = run(stack, prompt="x", tools=["get_order"])
    assert data(result, "tool_result")[0]["error"]["type"] == "unknown_tool"
    assert not stack.marker.exists()
    first = stack.bodies()[0]
    offered = json.dumps(first.get("tools"))
    assert "get_order" in offered and "slow_lookup" not in offered and "danger" not in offered


def test_images_reach_the_provider_in_its_format(stack: Stack) -> None:
    stack.mock.script(MockReply(text="A cat."))
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "url": "https://example.com/cat.png"},
            {"type": "image", "data": PNG, "media_type": "image/png"},
        ],
    }
    result = run(stack, messages=[message])
    assert result.text == "A cat."
    body = stack.bodies()[0]
    if stack.name == "openai":
        assert body["messages"][-1]["content"] == [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
    elif stack.name == "anthropic":
        assert body["messages"][-1]["content"] == [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": PNG},
            },
        ]
    else:
        assert body["contents"][-1]["parts"] == [
            {"text": "What is this?"},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
        ]


BIG = base64.b64encode(b"\0" * 1001).decode()
OK_800 = base64.b64encode(b"\0" * 800).decode()


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        ([{"type": "image", "data": BIG, "media_type": "image/png"}], "image_too_large"),
        (
            [{"type": "image", "data": OK_800, "media_type": "image/png"}] * 2,
            "image_too_large",  # over AI_SSE_MAX_IMAGES_BYTES together
        ),
        ([{"type": "image", "url": "file:///etc/passwd"}], "invalid_url"),
        ([{"type": "image", "url": "data:image/png;base64,AAAA"}], "invalid_url"),
        ([{"type": "image", "data": PNG, "media_type": "image/tiff"}], "invalid_media_type"),
        ([{"type": "image", "data": PNG}], "invalid_media_type"),
        ([{"type": "image", "data": "not base64!", "media_type": "image/png"}], "invalid_part"),
        ([{"type": "text", "text": "x"}] * 5, "too_many_parts"),
        ([{"type": "audio", "data": "AAAA"}], "invalid_part"),
    ],
)
def test_image_limits(stack: Stack, parts: list[dict[str, Any]], kind: str) -> None:
    if stack.name != "openai":
        pytest.skip("validation happens before any provider: one format is enough")
    resp = post(stack, messages=[{"role": "user", "content": parts}])
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["type"] == kind
    assert stack.mock.requests == []


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


def expect_schema_sent(name: str, body: dict[str, Any]) -> None:
    if name == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
        }
    elif name == "anthropic":
        assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"] == SCHEMA


def test_structured_output_streamed(stack: Stack) -> None:
    stack.mock.script(MockReply(chunks=['{"city": "Os', 'lo", "temp": -2.5}']))
    result = run(stack, prompt="Weather?", schema=SCHEMA)
    done = data(result, "done")[0]
    assert done["output"] == {"city": "Oslo", "temp": -2.5}
    assert result.text == '{"city": "Oslo", "temp": -2.5}'
    expect_schema_sent(stack.name, stack.bodies()[0])

    stack.mock.script(MockReply(chunks=['{"city": ', '"Oslo"}']))
    result = run(stack, prompt="Weather?", schema=SCHEMA)
    assert result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "invalid_output"


def test_structured_output_asked(stack: Stack) -> None:
    stack.mock.script(MockReply(text='{"city": "Oslo", "temp": 4}'))
    resp = requests.post(
        f"{stack.url}/ai/ask", json={"prompt": "Weather?", "schema": SCHEMA}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"city": "Oslo", "temp": 4}
    assert stack.mock.requests[0].json.get("stream") in (None, False)
    expect_schema_sent(stack.name, stack.bodies()[0])

    stack.mock.script(MockReply(text="Oslo, 4 degrees"))
    resp = requests.post(
        f"{stack.url}/ai/ask", json={"prompt": "Weather?", "schema": SCHEMA}, timeout=10
    )
    assert resp.status_code == 502
    assert resp.json()["error"]["type"] == "invalid_output"


def test_ask_route_runs_tools(stack: Stack) -> None:
    stack.mock.script(
        MockReply(text="", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="Shipped."),
    )
    resp = requests.post(f"{stack.url}/ai/ask", json={"prompt": "A-1?"}, timeout=10)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert (answer["text"], answer["steps"], answer["finish_reason"]) == ("Shipped.", 2, "stop")
    assert len(stack.mock.requests) == 2


def test_a_persisted_tool_conversation_is_replayed_on_the_next_turn(stack: Stack) -> None:
    cid = requests.post(f"{stack.url}/ai/conversations", json={}, timeout=5).json()["id"]
    stack.mock.script(
        MockReply(text="Checking.", tool_calls=[ORDER], finish_reason="tool_calls"),
        MockReply(text="It has shipped."),
        MockReply(text="You are welcome."),
    )
    first = run(stack, prompt="Where is A-1?", conversation_id=cid)
    call_id = data(first, "tool_call")[0]["id"]
    second = run(stack, prompt="Thanks!", conversation_id=cid)
    assert second.text == "You are welcome."
    body = stack.bodies()[2]  # the second turn's request
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
    stored = requests.get(f"{stack.url}/ai/conversations/{cid}", timeout=5).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored[:4]] == [
        ("user", "Where is A-1?"),
        ("assistant", "Checking."),
        ("tool", json.dumps({"order_id": "A-1", "status": "shipped"})),
        ("assistant", "It has shipped."),
    ]
    assert stored[1]["meta"]["tool_calls"][0]["id"] == stored[2]["meta"]["tool_call_id"] == call_id
