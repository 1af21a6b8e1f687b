"""Each adapter against its mock upstream: what comes out, and exactly what went up."""

from __future__ import annotations

from typing import Any

import pytest

from flask_ai_sse.chunks import ChatRequest, Chunk
from flask_ai_sse.providers.http import HTTPProvider
from flask_ai_sse.testing.upstream import MockReply, MockToolCall, MockUpstream

from .provider_kit import KEY, fold, make_provider, request_for

HOSTILE = ["line one\n\ndata: [DONE]\r\n", "event: error\r", "\rid: 7\n", "tail\u2028end"]
EMOJI = "pizza 🍕, love ❤️, thumbs 👍🏽 and 𝄞"


def stream_all(provider: HTTPProvider, **kwargs: Any) -> list[Chunk]:
    with provider.open(request_for(provider, **kwargs)) as stream:
        return list(stream)


def test_text_usage_finish_and_model(mock: MockUpstream, provider: HTTPProvider) -> None:
    reply = MockReply(text="The quick brown fox.", model="served-model-1")
    mock.script(reply)
    chunks = stream_all(provider)
    texts = [c.text for c in chunks if c.kind == "text"]
    assert texts == ["The ", "quick ", "brown ", "fox."]
    assert [c.kind for c in chunks[-2:]] == ["finish", "usage"]
    answer = fold(chunks)
    assert answer.text == "The quick brown fox."
    assert answer.finish_reason == "stop"
    assert answer.model == "served-model-1"
    assert answer.usage.to_dict() == {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.total_tokens,
    }


@pytest.mark.parametrize(
    ("finish", "raw"),
    [
        ("stop", {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP"}),
        ("length", {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}),
        (
            "content_filter",
            {"openai": "content_filter", "anthropic": "refusal", "gemini": "SAFETY"},
        ),
    ],
)
def test_finish_reasons_normalized(
    mock: MockUpstream, provider: HTTPProvider, finish: str, raw: dict[str, str]
) -> None:
    mock.script(MockReply(text="x", finish_reason=finish))
    answer = fold(stream_all(provider))
    assert (answer.finish_reason, answer.raw_finish_reason) == (finish, raw[mock.name])


def test_unknown_finish_reason_kept_raw(mock: MockUpstream, provider: HTTPProvider) -> None:
    mock.script(MockReply(text="x", raw_finish_reason="something_new"))
    answer = fold(stream_all(provider))
    assert (answer.finish_reason, answer.raw_finish_reason) == ("stop", "something_new")


def test_reasoning_and_tool_calls(mock: MockUpstream, provider: HTTPProvider) -> None:
    calls = [
        MockToolCall("get_weather", {"city": "Paris", "unit": "C"}, id="call_1"),
        MockToolCall("get_time", {"tz": "Europe/Paris"}, id="call_2"),
    ]
    mock.script(
        MockReply(
            text="Let me check.",
            reasoning=["Think", "ing..."],
            tool_calls=calls,
            finish_reason="tool_calls",
        )
    )
    answer = fold(stream_all(provider))
    assert answer.reasoning == "Thinking..."
    assert answer.text == "Let me check."
    assert answer.finish_reason == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in answer.tool_calls] == [
        ("get_weather", '{"city": "Paris", "unit": "C"}'),
        ("get_time", '{"tz": "Europe/Paris"}'),
    ]
    if mock.name != "gemini":  # Gemini's function calls carry no id
        assert [c["id"] for c in answer.tool_calls] == ["call_1", "call_2"]


def test_hostile_text_is_carried_whole(mock: MockUpstream, provider: HTTPProvider) -> None:
    mock.script(MockReply(chunks=HOSTILE))
    chunks = stream_all(provider)
    assert [c.text for c in chunks if c.kind == "text"] == HOSTILE


def test_multibyte_characters_split_across_tcp_writes(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    mock.script(MockReply(text=EMOJI, split_writes=True))
    assert fold(stream_all(provider)).text == EMOJI


def test_close_delimited_body_streams_incrementally(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    """Regression: iter_content(None) reads a non-chunked body to its end before yielding."""
    mock.script(MockReply(text="first second", chunked=False, stall=30, at=1))
    stream = provider.open(request_for(provider))
    # Would raise ProviderTimeout after read_timeout if the client waited for the body's end.
    first = next(chunk for chunk in stream if chunk.kind == "text")
    assert first.text == "first "
    stream.close()
    assert mock.wait_for_open_streams(0)


def test_close_delimited_body_complete(mock: MockUpstream, provider: HTTPProvider) -> None:
    mock.script(MockReply(text="all of it", chunked=False))
    assert fold(stream_all(provider)).text == "all of it"


def test_connections_are_pooled_and_reused(mock: MockUpstream, provider: HTTPProvider) -> None:
    for _ in range(3):
        assert fold(stream_all(provider)).text == "Hello from the mock upstream!"
    provider.complete(request_for(provider))
    stats = mock.stats()
    assert (stats["requests"], stats["connections_total"]) == (4, 1)
    assert stats["streams_completed"] == 3


def test_complete_non_streaming(mock: MockUpstream, provider: HTTPProvider) -> None:
    reply = MockReply(
        text="Whole answer.",
        reasoning=["hmm"],
        tool_calls=[MockToolCall("lookup", {"q": "x"})],
        model="served-2",
        finish_reason="length",
    )
    mock.script(reply)
    answer = provider.complete(request_for(provider))
    assert (answer.text, answer.reasoning, answer.model) == ("Whole answer.", "hmm", "served-2")
    assert answer.finish_reason == "length"
    assert answer.tool_calls[0]["name"] == "lookup"
    assert answer.usage is not None and answer.usage.total_tokens == reply.total_tokens
    body = mock.last_request.json
    assert body.get("stream") in (False, None)
    if mock.name == "gemini":
        assert mock.last_request.path.endswith(":generateContent")


def test_unknown_events_and_comments_are_ignored(
    mock: MockUpstream, provider: HTTPProvider
) -> None:
    extra = {
        "openai": b": keepalive comment\n\n",
        "anthropic": b'event: ping\ndata: {"type": "ping"}\n\n'
        b'event: brand_new_event\ndata: {"type": "brand_new_event", "x": 1}\n\n',
        "gemini": b": comment\r\n\r\n",
    }[mock.name]
    mock.script(MockReply(text="a b c", inject=extra, at=1))
    assert fold(stream_all(provider)).text == "a b c"


# -- the exact upstream requests ----------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Again"},
]


def full_request(provider: HTTPProvider, **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        messages=[dict(m) for m in CONVERSATION],  # type: ignore[misc]
        model=provider.model,
        system="Be brief.",
        temperature=0.2,
        max_tokens=64,
        **kwargs,
    )


def test_openai_request(openai_mock: MockUpstream) -> None:
    provider = make_provider(openai_mock)
    list(provider.open(full_request(provider, options={"top_p": 0.9, "model": "ignored"})))
    sent = openai_mock.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, *CONVERSATION],
        "temperature": 0.2,
        "max_completion_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
        "top_p": 0.9,
    }


@pytest.mark.parametrize(
    "preset", ["groq", "mistral", "ollama", "openrouter", "vllm", "deepseek", "together"]
)
def test_openai_compatible_presets_send_max_tokens(openai_mock: MockUpstream, preset: str) -> None:
    provider = make_provider(openai_mock, preset)
    answer = fold(list(provider.open(full_request(provider))))
    assert answer.text == "Hello from the mock upstream!"
    body = openai_mock.last_request.json
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
    assert body["model"] == provider.default_model


def test_anthropic_request(anthropic_mock: MockUpstream) -> None:
    provider = make_provider(anthropic_mock)
    list(provider.open(full_request(provider)))
    sent = anthropic_mock.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": CONVERSATION,
        "temperature": 0.2,
        "stream": True,
    }


def test_anthropic_system_messages_and_default_max_tokens(anthropic_mock: MockUpstream) -> None:
    provider = make_provider(anthropic_mock)
    request = ChatRequest(
        messages=[{"role": "system", "content": "Rule two."}, {"role": "user", "content": "Hi"}],
        model="claude-x",
        system="Rule one.",
    )
    list(provider.open(request))
    body = anthropic_mock.last_request.json
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 1024
    assert "temperature" not in body


def test_gemini_request(gemini_mock: MockUpstream) -> None:
    provider = make_provider(gemini_mock)
    request = full_request(provider, options={"generationConfig": {"topP": 0.5}})
    list(provider.open(request))
    sent = gemini_mock.last_request
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Again"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64, "topP": 0.5},
    }


def test_extra_headers_from_provider_options(openai_mock: MockUpstream) -> None:
    provider = make_provider(
        openai_mock, options={"headers": {"HTTP-Referer": "https://a.example"}}
    )
    list(provider.open(request_for(provider)))
    assert openai_mock.last_request.headers["http-referer"] == "https://a.example"
