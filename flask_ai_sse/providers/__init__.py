"""Provider adapters, one module per wire format, behind one registry.

To add a wire format, subclass :class:`HTTPProvider` and :class:`StreamParser`
(``flask_ai_sse.providers.http``) and register a factory in :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigurationError
from .anthropic import AnthropicProvider
from .base import ChunkStream, Provider, ProviderConfig
from .fake import FakeProvider, FakeReply
from .fallback import FallbackProvider
from .gemini import GeminiProvider
from .http import HTTPChunkStream, HTTPProvider, StreamParser
from .openai import PRESETS, OpenAICompatibleProvider, OpenAIProvider

ProviderFactory = Callable[[ProviderConfig], Provider]

#: name -> factory. Adapters register here; ``AI_SSE_PROVIDER`` picks one.
REGISTRY: dict[str, ProviderFactory] = {
    "fake": FakeProvider,
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    **{preset.name: preset for preset in PRESETS},
}


def create_provider(config: ProviderConfig) -> Provider:
    """Build the adapter ``config.name`` names, or fail with the names there are."""
    try:
        factory = REGISTRY[config.name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigurationError(
            f"Unknown AI_SSE_PROVIDER {config.name!r}; expected one of: {known}."
        ) from None
    return factory(config)


def build_provider(
    config: ProviderConfig, fallbacks: list[ProviderConfig] | None = None
) -> Provider:
    """The provider the extension uses: ``config``'s adapter, then ``fallbacks`` in order."""
    primary = create_provider(config)
    if not fallbacks:
        return primary
    return FallbackProvider([primary, *(create_provider(f) for f in fallbacks)])


__all__ = [
    "REGISTRY",
    "AnthropicProvider",
    "ChunkStream",
    "FakeProvider",
    "FakeReply",
    "FallbackProvider",
    "GeminiProvider",
    "HTTPChunkStream",
    "HTTPProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Provider",
    "ProviderConfig",
    "StreamParser",
    "build_provider",
    "create_provider",
]
