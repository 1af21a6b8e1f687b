"""The mocks are faithful: the official SDKs, pointed at them, parse what they send.

If a mock drifted from the real wire format (event names, JSON shapes, usage,
terminators, error bodies), these SDKs would fail or disagree here, and the
adapter tests that rely on the mocks would prove nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_ai_sse.testing.upstream import MockReply, MockToolCall, MockUpstream

from .provider_kit import KEY

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

HOSTILE = "Hi!\n\ndata: [DONE]\r\nevent: error\r\r🍕 done"
MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def openai_client(openai_mock: MockUpstream) -> Iterator[object]:
    client = openai.OpenAI(base_url=openai_mock.base_url, api_key=KEY, max_retries=0, timeout=5)
    yield client
    client.close()


@pytest.fixture
def anthropic_client(anthropic_mock: MockUpstream) -> Iterator[object]:
    client = anthropic.Anthropic(base_url=anthropic_mock.url, api_key=KEY, max_retries=0, timeout=5)
    yield client
    client.close()


# -- OpenAI ---------------------------------------------------------------------------------


def test_openai_sdk_stream(openai_mock: MockUpstream, openai_client: object) -> None:
    reply = MockReply(text=HOSTILE, split_writes=True, model="gpt-4o-mini-2024-07-18")
    openai_mock.script(reply)
    stream = openai_client.chat.completions.create(  # type: ignore[attr-defined]
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, models = "", None, None, set()
    for chunk in stream:
        models.add(chunk.model)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == HOSTILE
    assert finish == "stop"
    assert models == {"gpt-4o-mini-2024-07-18"}
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        reply.prompt_tokens,
        reply.completion_tokens,
        reply.total_tokens,
    )


def test_openai_sdk_stream_helper_accumulates_tool_calls(
    openai_mock: MockUpstream, openai_client: object
) -> None:
    calls = [MockToolCall("get_weather", {"city": "Paris"}), MockToolCall("f", {}, id="call_2")]
    openai_mock.script(MockReply(text="Checking.", tool_calls=calls, finish_reason="tool_calls"))
    with openai_client.chat.completions.stream(  # type: ignore[attr-defined]
        model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls] == [
        ("call_mock_1", "get_weather", '{"city": "Paris"}'),
        ("call_2", "f", "{}"),
    ]
    assert final.usage.completion_tokens == 3  # one text piece, two calls


def test_openai_sdk_complete(openai_mock: MockUpstream, openai_client: object) -> None:
    openai_mock.script(MockReply(text="Whole.", finish_reason="length"))
    completion = openai_client.chat.completions.create(  # type: ignore[attr-defined]
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert completion.choices[0].message.content == "Whole."
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.total_tokens == 11


def test_openai_sdk_errors(openai_mock: MockUpstream, openai_client: object) -> None:
    openai_mock.script(MockReply(status=429, retry_after="2", error_message="Slow down."))
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[attr-defined]
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["message"] == "Slow down."
    openai_mock.script(MockReply(text="a b c", fault="error_event", at=1))
    stream = openai_client.chat.completions.create(  # type: ignore[attr-defined]
        model="m", messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_openai_sdk_without_include_usage_gets_no_usage(
    openai_mock: MockUpstream, openai_client: object
) -> None:
    chunks = list(
        openai_client.chat.completions.create(  # type: ignore[attr-defined]
            model="m", messages=MESSAGES, stream=True
        )
    )
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)


# -- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_sdk_stream(anthropic_mock: MockUpstream, anthropic_client: object) -> None:
    reply = MockReply(text=HOSTILE, reasoning=["Let me ", "think."], split_writes=True)
    anthropic_mock.script(reply)
    with anthropic_client.messages.stream(  # type: ignore[attr-defined]
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == HOSTILE
    assert final.stop_reason == "end_turn"
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think."
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        reply.prompt_tokens,
        reply.completion_tokens,
    )


def test_anthropic_sdk_raw_events_and_tool_use(
    anthropic_mock: MockUpstream, anthropic_client: object
) -> None:
    calls = [MockToolCall("get_weather", {"city": "Paris"}, id="toolu_1")]
    anthropic_mock.script(MockReply(text="Checking.", tool_calls=calls, finish_reason="tool_calls"))
    with anthropic_client.messages.stream(  # type: ignore[attr-defined]
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert final.stop_reason == "tool_use"
    tool = final.content[-1]
    assert (tool.type, tool.id, tool.name, tool.input) == (
        "tool_use",
        "toolu_1",
        "get_weather",
        {"city": "Paris"},
    )


def test_anthropic_sdk_complete(anthropic_mock: MockUpstream, anthropic_client: object) -> None:
    anthropic_mock.script(MockReply(text="Whole.", finish_reason="length"))
    message = anthropic_client.messages.create(  # type: ignore[attr-defined]
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES
    )
    assert message.content[0].text == "Whole."
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 1


def test_anthropic_sdk_errors(anthropic_mock: MockUpstream, anthropic_client: object) -> None:
    anthropic_mock.script(MockReply(status=429, retry_after="2", error_message="Slow down."))
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client.messages.create(  # type: ignore[attr-defined]
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES
        )
    assert caught.value.response.headers["retry-after"] == "2"
    anthropic_mock.script(MockReply(text="a b c", fault="error_event", at=1))
    with (
        pytest.raises(anthropic.APIStatusError) as streamed,
        anthropic_client.messages.stream(  # type: ignore[attr-defined]
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES
        ) as stream,
    ):
        list(stream)
    assert "overloaded" in str(streamed.value).lower()
