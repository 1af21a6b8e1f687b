"""Fallbacks: other providers or models tried in order when one fails before the first byte."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from ..chunks import Answer, ChatRequest
from ..errors import ProviderError
from .base import AbortSignal, ChunkStream, Provider

logger = logging.getLogger("flask_ai_sse.providers")

T = TypeVar("T")


class FallbackProvider(Provider):
    """Tries ``providers`` in order in :meth:`open` and :meth:`complete`.

    The next one is tried when the previous raised a :class:`ProviderError`
    (after its own retries) before its stream began. Once :meth:`open` has
    returned, text may be on its way to a client, so a mid-stream failure is
    never retried anywhere. The first provider gets the request's model; the
    others use their own. When all fail, the last error is raised.
    Whoever answered is named by the stream's ``provider`` and ``model``.
    """

    name = "fallback"
    default_model = ""

    def __init__(self, providers: Sequence[Provider]) -> None:
        if not providers:
            raise ValueError("FallbackProvider needs at least one provider")
        super().__init__(providers[0].config)
        self.providers = list(providers)

    @property
    def model(self) -> str:
        return self.providers[0].model

    def _first_success(
        self,
        request: ChatRequest,
        call: Callable[[Provider, ChatRequest], T],
        abort: AbortSignal | None = None,
    ) -> T:
        for position, provider in enumerate(self.providers):
            attempt = request if position == 0 else replace(request, model=provider.model)
            try:
                return call(provider, attempt)
            except ProviderError as exc:
                if position == len(self.providers) - 1 or (abort is not None and abort.aborted):
                    raise
                logger.warning(
                    "%s failed before streaming (%s); falling back to %s",
                    provider.name,
                    exc.type,
                    self.providers[position + 1].name,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def open(self, request: ChatRequest) -> ChunkStream:
        return self._first_success(request, lambda provider, req: provider.open(req))

    def open_abortable(self, request: ChatRequest, abort: AbortSignal) -> ChunkStream:
        return self._first_success(
            request, lambda provider, req: provider.open_abortable(req, abort), abort
        )

    def complete(self, request: ChatRequest) -> Answer:
        # A whole answer is only returned once complete, so a mid-body failure falls back too.
        return self._first_success(request, lambda provider, req: provider.complete(req))

    def close(self) -> None:
        for provider in self.providers:
            provider.close()

    def __repr__(self) -> str:
        chain = " -> ".join(f"{p.name}:{p.model}" for p in self.providers)
        return f"<FallbackProvider {chain}>"
