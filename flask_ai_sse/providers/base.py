"""What every provider adapter implements. Nothing here knows of Flask.

An adapter's :meth:`Provider.open` makes the upstream request and returns once
the upstream status is known (after retries), so that a failure before the
first byte can still become a real HTTP error. :meth:`Provider.open_abortable`
is the same open, stoppable from another greenlet through an
:class:`AbortSignal` while it waits (the engine uses it when the response
starts before the provider's status is known). The :class:`ChunkStream` it
returns is iterated by one greenlet (the producer); :meth:`ChunkStream.abort`
may be called from any other one and must make that reader's blocked read end
promptly, without touching the reader's objects itself (closing a ``requests``
response from another greenlet while one reads it fails and leaks the socket).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import constants as C
from ..chunks import Answer, AnswerBuilder, ChatRequest, Chunk
from ..errors import ProviderError


@dataclass(frozen=True)
class ProviderConfig:
    """Settings for one provider, resolved from config by the extension (defaults:
    ``constants.DEFAULTS``)."""

    name: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    connect_timeout: float = C.DEFAULTS[C.CONNECT_TIMEOUT]
    read_timeout: float = C.DEFAULTS[C.READ_TIMEOUT]
    total_timeout: float = C.DEFAULTS[C.TOTAL_TIMEOUT]
    max_retries: int = C.DEFAULTS[C.MAX_RETRIES]
    retry_max_wait: float = C.DEFAULTS[C.RETRY_MAX_WAIT]
    pool_size: int = C.DEFAULTS[C.POOL_SIZE]
    options: dict[str, Any] = field(default_factory=dict)


class AbortSignal:
    """Stops an open in flight from another greenlet or thread: its wait for the
    provider's status, a retry's backoff, and the fallbacks after it.

    The opener registers what to undo (``on_abort``: the socket in use); :meth:`abort`
    runs it. A socket connecting when the abort comes has nothing to shut yet, so
    whoever aborts may call :meth:`abort` again until the open has returned.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._undo: Callable[[], None] | None = None

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    def abort(self) -> None:
        """Stop the open: idempotent, safe from any greenlet or thread."""
        self._event.set()
        undo = self._undo
        if undo is not None:
            undo()

    def on_abort(self, undo: Callable[[], None] | None) -> None:
        """What :meth:`abort` must do now (``None``: nothing); run at once if aborted."""
        self._undo = undo
        if undo is not None and self.aborted:
            undo()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at an abort; True when aborted."""
        return self._event.wait(seconds) if seconds > 0 else self.aborted


class ChunkStream(abc.ABC):
    """An open upstream answer: an iterator of :class:`Chunk` with ``close``/``abort``."""

    provider: str
    model: str

    def __init__(self, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self._aborted = threading.Event()

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Chunk]: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release the upstream response. Called by the greenlet that iterates."""

    def abort(self) -> None:
        """Make the iterating greenlet stop soon; safe from any greenlet or thread.

        After it, iteration ends (it may raise a :class:`~flask_ai_sse.errors.ProviderError`,
        which the caller that aborted can ignore).
        """
        self._aborted.set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Provider(abc.ABC):
    """A model provider's adapter. One instance per app and provider."""

    #: The name used in ``AI_SSE_PROVIDER`` and in ``start`` events.
    name: ClassVar[str]
    default_model: ClassVar[str]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def model(self) -> str:
        return self.config.model or self.default_model

    @abc.abstractmethod
    def open(self, request: ChatRequest) -> ChunkStream:
        """Start a streamed answer; return once the upstream status is known."""

    def open_abortable(self, request: ChatRequest, abort: AbortSignal) -> ChunkStream:
        """:meth:`open`, ending early (with a :class:`~flask_ai_sse.errors.ProviderError`)
        when ``abort`` fires. The network adapters stop their request at once; this
        default can only stop before it begins, and its caller closes what it returns.
        """
        if abort.aborted:
            raise ProviderError("The request was stopped before it began.", provider=self.name)
        return self.open(request)

    def complete(self, request: ChatRequest) -> Answer:
        """A whole answer without streaming. Adapters with a non-streaming API override it."""
        stream = self.open(request)
        builder = AnswerBuilder(model=stream.model, provider=stream.provider)
        with stream:
            for chunk in stream:
                builder.add(chunk)
        return builder.answer()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections (called when the app's extension state goes away)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} model={self.model!r}>"
