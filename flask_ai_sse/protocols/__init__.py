"""Wire protocols: the same generation as ``default``, ``vercel`` or ``openai`` bytes.

See :mod:`.base` for the neutral events the producer writes and how encoders read them.
"""

from __future__ import annotations

from typing import Any, Final

from .base import END, KINDS, Encoder, event_id, pack, pack_text, unpack
from .default import DefaultEncoder
from .openai import OpenAIEncoder
from .vercel import VercelEncoder

__all__ = [
    "END",
    "KINDS",
    "PROTOCOLS",
    "DefaultEncoder",
    "Encoder",
    "OpenAIEncoder",
    "VercelEncoder",
    "create_encoder",
    "event_id",
    "pack",
    "pack_text",
    "unpack",
]

#: Every protocol by its ``?protocol=`` name.
PROTOCOLS: Final[dict[str, type[Encoder]]] = {
    "default": DefaultEncoder,
    "vercel": VercelEncoder,
    "openai": OpenAIEncoder,
}


def create_encoder(protocol: str, stream_id: str, *, retry: int = 3000, **options: Any) -> Encoder:
    """A fresh encoder of ``protocol`` for one reader of ``stream_id``."""
    try:
        cls = PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}") from None
    return cls(stream_id, retry=retry, **options)
