"""Provider adapters, one module per wire format, behind one registry."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigurationError
from .base import ChunkStream, Provider, ProviderConfig
from .fake import FakeProvider, FakeReply

ProviderFactory = Callable[[ProviderConfig], Provider]

#: name -> factory. Adapters register here; ``AI_SSE_PROVIDER`` picks one.
REGISTRY: dict[str, ProviderFactory] = {"fake": FakeProvider}


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


__all__ = [
    "REGISTRY",
    "ChunkStream",
    "FakeProvider",
    "FakeReply",
    "Provider",
    "ProviderConfig",
    "create_provider",
]
