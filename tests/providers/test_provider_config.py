"""Registry, presets, keys and fallbacks."""

from __future__ import annotations

import pytest

from flask_ai_sse.errors import ConfigurationError, ProviderStatusError
from flask_ai_sse.providers import (
    REGISTRY,
    FakeProvider,
    FallbackProvider,
    ProviderConfig,
    build_provider,
    create_provider,
)
from flask_ai_sse.providers.http import HTTPProvider, with_options
from flask_ai_sse.testing.upstream import MockReply, MockUpstream

from .provider_kit import KEY, fold, make_provider, request_for

PRESETS = {
    # name: (base URL, key variable or None when no key is needed)
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": ("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"),
    "gemini": ("https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY"),
    "ollama": ("http://localhost:11434/v1", None),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "vllm": ("http://localhost:8000/v1", None),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together": ("https://api.together.ai/v1", "TOGETHER_API_KEY"),
}
KEY_VARIABLES = {v for _, v in PRESETS.values() if v} | {
    "GOOGLE_API_KEY",
    "OLLAMA_API_KEY",
    "VLLM_API_KEY",
}


@pytest.fixture(autouse=True)
def no_keys_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_registry_names() -> None:
    assert set(REGISTRY) == {"fake", *PRESETS}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_defaults_and_keys(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, variable = PRESETS[name]
    if variable is None:
        provider = create_provider(ProviderConfig(name))
    else:
        with pytest.raises(ConfigurationError, match=f"AI_SSE_API_KEY or {variable}"):
            create_provider(ProviderConfig(name))
        monkeypatch.setenv(variable, KEY)
        provider = create_provider(ProviderConfig(name))
    assert isinstance(provider, HTTPProvider)
    assert provider.base_url == base_url
    assert provider.model == provider.default_model and provider.model
    assert KEY not in repr(provider)
    provider.close()


def test_config_key_wins_over_environment(
    monkeypatch: pytest.MonkeyPatch, openai_mock: MockUpstream
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment-xxxxxxxx")
    provider = make_provider(openai_mock)
    list(provider.open(request_for(provider)))
    assert openai_mock.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_gemini_takes_google_api_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    provider = create_provider(ProviderConfig("gemini"))
    assert provider.transport.session.headers["x-goog-api-key"] == KEY  # type: ignore[attr-defined]


def test_keyless_local_server_sends_no_authorization(openai_mock: MockUpstream) -> None:
    openai_mock.api_key = None
    provider = make_provider(openai_mock, "ollama", api_key=None)
    list(provider.open(request_for(provider)))
    assert "authorization" not in openai_mock.last_request.headers


def test_unknown_provider_and_bad_base_url() -> None:
    with pytest.raises(ConfigurationError, match="expected one of: anthropic, deepseek"):
        create_provider(ProviderConfig("nope"))
    with pytest.raises(ConfigurationError, match="must start with http"):
        create_provider(ProviderConfig("openai", api_key=KEY, base_url="api.openai.com/v1"))


def test_configs_never_show_the_key() -> None:
    config = ProviderConfig("openai", api_key=KEY)
    assert KEY not in repr(config) and KEY not in str(config)


def test_with_options_adds_but_never_rewrites() -> None:
    body = {"model": "m", "stream": True, "generationConfig": {"temperature": 0.1}}
    options = {"model": "x", "stream": False, "top_p": 1, "generationConfig": {"topK": 3}}
    assert with_options(body, options) == {
        "model": "m",
        "stream": True,
        "top_p": 1,
        "generationConfig": {"topK": 3, "temperature": 0.1},
    }


# -- fallbacks -------------------------------------------------------------------------------


def test_build_provider_without_fallbacks_is_the_adapter() -> None:
    assert isinstance(build_provider(ProviderConfig("fake")), FakeProvider)


def test_fallback_when_the_primary_fails_before_streaming(
    openai_mock: MockUpstream, anthropic_mock: MockUpstream
) -> None:
    openai_mock.script(MockReply(status=503))
    anthropic_mock.script(MockReply(text="from the fallback"))
    settings = {"max_retries": 1, "retry_max_wait": 0.01, "connect_timeout": 2.0}
    provider = build_provider(
        ProviderConfig("openai", api_key=KEY, base_url=openai_mock.base_url, **settings),
        [
            ProviderConfig(
                "anthropic",
                model="claude-fallback",
                api_key=KEY,
                base_url=anthropic_mock.base_url,
                **settings,
            )
        ],
    )
    assert isinstance(provider, FallbackProvider)
    assert provider.model == "gpt-4o-mini"
    assert "openai:gpt-4o-mini -> anthropic:claude-fallback" in repr(provider)
    stream = provider.open(request_for(provider))
    assert (stream.provider, stream.model) == ("anthropic", "claude-fallback")
    assert fold(list(stream)).text == "from the fallback"
    assert len(openai_mock.requests) == 2  # its own retries first
    assert anthropic_mock.last_request.json["model"] == "claude-fallback"
    answer = provider.complete(request_for(provider))
    assert (answer.provider, answer.text) == ("anthropic", "from the fallback")
    provider.close()


def test_no_fallback_once_streaming(openai_mock: MockUpstream, gemini_mock: MockUpstream) -> None:
    openai_mock.script(MockReply(text="partial answer", fault="reset", at=1))
    provider = FallbackProvider([make_provider(openai_mock), make_provider(gemini_mock)])
    stream = provider.open(request_for(provider))
    assert stream.provider == "openai"
    with pytest.raises(Exception, match="broke mid-stream"):
        list(stream)
    assert gemini_mock.requests == []


def test_all_failing_raises_the_last_error(
    openai_mock: MockUpstream, gemini_mock: MockUpstream
) -> None:
    openai_mock.script(MockReply(status=500))
    gemini_mock.script(MockReply(status=429, retry_after="30"))
    provider = FallbackProvider([make_provider(openai_mock), make_provider(gemini_mock)])
    with pytest.raises(ProviderStatusError) as caught:
        provider.open(request_for(provider))
    assert (caught.value.provider, caught.value.status, caught.value.retry_after) == (
        "gemini",
        429,
        30.0,
    )


# -- parsing corners the mocks don't produce ------------------------------------------------


def test_upstream_error_message_shapes() -> None:
    from flask_ai_sse.providers._transport import upstream_message

    assert upstream_message(b'{"error": {"message": "m1", "type": "t"}}') == "m1"
    assert upstream_message(b'{"type": "error", "error": {"type": "overloaded_error"}}') == (
        "overloaded_error"
    )
    assert upstream_message(b'[{"error": {"code": 429, "message": "m2"}}]') == "m2"
    assert upstream_message(b'{"error": "plain"}') == "plain"
    assert upstream_message(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"


def test_vllm_error_object_mid_stream() -> None:
    from flask_ai_sse.errors import ProviderError
    from flask_ai_sse.providers.openai import OpenAIParser
    from flask_ai_sse.sse import ServerSentEvent

    parser = OpenAIParser(provider="vllm", model="m", scrub=str)
    event = ServerSentEvent('{"object": "error", "message": "out of memory", "code": 500}')
    with pytest.raises(ProviderError, match="out of memory"):
        list(parser.feed(event))


def test_gemini_blocked_prompt_is_content_filter() -> None:
    from flask_ai_sse.providers.gemini import GeminiParser

    parser = GeminiParser(provider="gemini", model="m", scrub=str)
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    chunks = list(parser.answer(blocked))
    assert [(c.kind, c.finish_reason, c.raw_finish_reason) for c in chunks] == [
        ("finish", "content_filter", "SAFETY")
    ]


def test_openai_usage_on_every_chunk_is_reported_once() -> None:
    from flask_ai_sse.providers.openai import OpenAIParser
    from flask_ai_sse.sse import ServerSentEvent

    parser = OpenAIParser(provider="ollama", model="m", scrub=str)
    frames = [
        '{"choices": [{"index": 0, "delta": {"content": "a"}}], '
        '"usage": {"prompt_tokens": 1, "completion_tokens": 1}}',
        '{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], '
        '"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}',
        "[DONE]",
    ]
    chunks = [c for frame in frames for c in parser.feed(ServerSentEvent(frame))]
    assert [c.kind for c in chunks] == ["text", "finish", "usage"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3


def test_proxy_environment_is_read_once_and_no_proxy_is_honoured(openai_mock, monkeypatch):
    """Regression: requests re-read proxies and ~/.netrc on every request (slow set-up)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    provider = make_provider(openai_mock)
    session = provider.transport.session
    assert session.trust_env is False
    assert "http" not in session.proxies  # the mock's origin bypasses the proxy
    openai_mock.script(MockReply(text="direct"))
    assert provider.complete(request_for(provider)).text == "direct"

    monkeypatch.delenv("NO_PROXY")
    proxied = make_provider(openai_mock)
    assert proxied.transport.session.proxies["http"] == "http://proxy.invalid:9"
