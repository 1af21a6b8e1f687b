"""A turn: the request that goes upstream, and what plugs in around it.

The core path builds a bare :class:`Turn`. An optional feature that stores
conversations (``persistence/``) implements :class:`Conversations` and hands
back a richer turn: the request with its history, the stream id it stored,
extras for the ``start`` event and observers that follow the generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .chunks import Answer, ChatRequest
from .engine import Observer

#: The option of ``ai.ask_stream(..., conversation=c, message_meta={...})`` whose dict
#: is kept in the stored answer's ``meta``; it is never sent upstream.
MESSAGE_META_OPTION = "message_meta"


@dataclass
class Turn:
    """What one stream (or ask) sends upstream and who follows it."""

    request: ChatRequest
    stream_id: str | None = None
    #: Extra fields of the ``start`` event (``conversation_id``, ``message_id``).
    start: dict[str, Any] = field(default_factory=dict)
    observers: tuple[Observer, ...] = ()

    def answered(self, answer: Answer) -> None:
        """A whole answer came back (``ask``): nothing to keep on the core path."""

    def failed(self, error: BaseException) -> None:
        """The upstream refused before any byte: nothing to undo on the core path."""


class Conversations(Protocol):
    """The hook through which stored conversations join a turn."""

    def begin_turn(
        self,
        request: ChatRequest,
        *,
        owner: str | None,
        provider: str,
        meta: Mapping[str, Any],
    ) -> Turn:
        """Store the request's new messages and an answer to stream into; add history."""
        ...
