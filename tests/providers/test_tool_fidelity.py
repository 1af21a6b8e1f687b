"""The mocks' tool calls and JSON answers, as the official SDKs parse them.

Several calls in one step, arguments streamed in pieces (OpenAI, Anthropic) or
whole (Gemini): if the SDKs assemble the same calls, the adapters' tests over
these mocks mean something.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from flask_ai_sse.testing.upstream import MockReply, MockToolCall, MockUpstream

from .provider_kit import KEY

CALLS = [
    MockToolCall("get_order", {"order_id": "A-1", "lines": [1, 2]}, id="call_1", pieces=5),
    MockToolCall("get_weather", {"city": "Oslo"}, id="call_2"),
]
MESSAGES = [{"role": "user", "content": "Hello"}]


def test_openai_sdk_parallel_tool_calls(openai_mock: MockUpstream) -> None:
    openai = pytest.importorskip("openai")
    openai_mock.script(MockReply(text="", tool_calls=CALLS, finish_reason="tool_calls"))
    client = openai.OpenAI(base_url=openai_mock.base_url, api_key=KEY, max_retries=0, timeout=5)
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    client.close()
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (c.id, c.name, c.arguments) for c in CALLS
    ]


def test_anthropic_sdk_parallel_tool_use(anthropic_mock: MockUpstream) -> None:
    anthropic = pytest.importorskip("anthropic")
    anthropic_mock.script(
        MockReply(text="Two lookups.", tool_calls=CALLS, finish_reason="tool_calls")
    )
    client = anthropic.Anthropic(base_url=anthropic_mock.url, api_key=KEY, max_retries=0, timeout=5)
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES
    ) as stream:
        partial = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    client.close()
    assert len(partial) == 5 + 2  # each call's arguments arrived in its pieces
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [(c.id, c.name, c.arguments) for c in CALLS]


@pytest.fixture
def genai_client(gemini_mock: MockUpstream) -> Iterator[object]:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    yield genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(base_url=gemini_mock.url, api_version="v1beta"),
    )


def test_genai_sdk_function_calls(gemini_mock: MockUpstream, genai_client: object) -> None:
    gemini_mock.script(MockReply(text="Looking.", tool_calls=CALLS, finish_reason="tool_calls"))
    calls = []
    for chunk in genai_client.models.generate_content_stream(  # type: ignore[attr-defined]
        model="gemini-2.5-flash", contents="Hello"
    ):
        calls += chunk.function_calls or []
    assert [(c.name, c.args) for c in calls] == [(c.name, c.arguments) for c in CALLS]
    whole = genai_client.models.generate_content(  # type: ignore[attr-defined]
        model="gemini-2.5-flash", contents="Hello"
    )
    assert [(c.name, c.args) for c in whole.function_calls] == [
        (c.name, c.arguments) for c in CALLS
    ]


def test_genai_sdk_json_answer(gemini_mock: MockUpstream, genai_client: object) -> None:
    gemini_mock.script(MockReply(text='{"city": "Oslo", "temp": 3}'))
    answer = genai_client.models.generate_content(  # type: ignore[attr-defined]
        model="gemini-2.5-flash",
        contents="Weather?",
        config={
            "response_mime_type": "application/json",
            "response_json_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
            },
        },
    )
    assert answer.parsed == {"city": "Oslo", "temp": 3}
    sent = gemini_mock.requests[-1].json["generationConfig"]
    assert sent["responseMimeType"] == "application/json"
    assert "responseJsonSchema" in sent
