"""Upstream figures through a real HTTP provider and a mock upstream: requests, retries,
fallbacks, the provider's usage, and no key or prompt in any log record."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock

prometheus_client = pytest.importorskip("prometheus_client")

KEY = "sk-observability-test-key-0123456789"
PROMPT = "a-prompt-that-must-stay-private"


def value(registry: Any, name: str, **labels: str) -> float:
    return float(registry.get_sample_value(name, labels) or 0.0)


def make_app(mock: OpenAIMock, registry: Any, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        AI_SSE_PROVIDER="openai",
        AI_SSE_BASE_URL=mock.base_url,
        AI_SSE_API_KEY=KEY,
        AI_SSE_MAX_RETRIES=1,
        AI_SSE_RETRY_MAX_WAIT=0.05,
        AI_SSE_KEEPALIVE=5,
        AI_SSE_METRICS=registry,
        AI_SSE_PRICES={"gpt-4o-mini": {"input": 0.15, "output": 0.6}},
    )
    app.config.update(config)
    AISSE(app)
    return app


def test_retries_usage_and_cost_from_a_real_provider(caplog):
    registry = prometheus_client.CollectorRegistry()
    with OpenAIMock(api_key=KEY) as mock:
        mock.script(MockReply(status=503), MockReply(text="Hello there."))
        app = make_app(mock, registry)
        with caplog.at_level(logging.DEBUG):
            result = collect(app.test_client().get(f"/ai/stream?prompt={PROMPT}"))
            assert mock.wait_for_open_streams(0, timeout=5)
    assert result.text == "Hello there."
    done = json.loads(result.named("done")[0].data)
    assert done["usage"]["estimated"] is False and done["usage"]["completion_tokens"] > 0
    usage = done["usage"]
    assert done["cost"] == pytest.approx(
        (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.6) / 1e6
    )
    assert value(registry, "ai_sse_upstream_retries_total", provider="openai") == 1
    assert value(registry, "ai_sse_upstream_requests_total", provider="openai", outcome="ok") == 1
    assert value(registry, "ai_sse_upstream_latency_seconds_count", provider="openai") == 1
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value(registry, "ai_sse_cost_total", **labels) == pytest.approx(done["cost"])
    tokens = value(registry, "ai_sse_tokens_total", **labels, direction="output", estimated="false")
    assert tokens == usage["completion_tokens"]
    assert any(r.name == "flask_ai_sse.streams" for r in caplog.records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert KEY not in text and PROMPT not in text


def test_a_fallback_is_counted_against_the_provider_that_failed():
    registry = prometheus_client.CollectorRegistry()
    with OpenAIMock(api_key=KEY) as mock:
        mock.script(MockReply(status=500))
        app = make_app(
            mock, registry, AI_SSE_MAX_RETRIES=0, AI_SSE_FALLBACKS=[{"provider": "fake"}]
        )
        result = collect(app.test_client().get("/ai/stream?prompt=x"))
    assert result.start["provider"] == "fake" and result.ended
    assert value(registry, "ai_sse_upstream_fallbacks_total", provider="openai") == 1
    failed = value(
        registry, "ai_sse_upstream_requests_total", provider="openai", outcome="provider_error"
    )
    assert failed == 1
    assert value(registry, "ai_sse_upstream_requests_total", provider="fake", outcome="ok") == 1
    ended = {"provider": "fake", "model": "fake-1", "ending": "completed", "error_type": ""}
    assert value(registry, "ai_sse_streams_ended_total", **ended) == 1
