"""Fixtures for the provider layer: a mock upstream per format and an adapter pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_ai_sse.providers.http import HTTPProvider
from flask_ai_sse.testing.upstream import FORMATS, MockUpstream

from .provider_kit import KEY, make_provider


@pytest.fixture(params=sorted(FORMATS))
def mock(request: pytest.FixtureRequest) -> Iterator[MockUpstream]:
    """Each format's mock upstream in turn, requiring the test key."""
    with FORMATS[request.param](api_key=KEY) as server:
        yield server


@pytest.fixture
def openai_mock() -> Iterator[MockUpstream]:
    with FORMATS["openai"](api_key=KEY) as server:
        yield server


@pytest.fixture
def anthropic_mock() -> Iterator[MockUpstream]:
    with FORMATS["anthropic"](api_key=KEY) as server:
        yield server


@pytest.fixture
def gemini_mock() -> Iterator[MockUpstream]:
    with FORMATS["gemini"](api_key=KEY) as server:
        yield server


@pytest.fixture
def provider(mock: MockUpstream) -> Iterator[HTTPProvider]:
    adapter = make_provider(mock)
    yield adapter
    adapter.close()


@pytest.fixture
def waits(provider: HTTPProvider) -> list[float]:
    """The backoff waits the provider asked for, recorded instead of slept."""
    recorded: list[float] = []
    provider.transport.sleep = recorded.append
    return recorded
