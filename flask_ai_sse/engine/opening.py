"""Opening the upstream request with a deadline on the provider's status line.

A provider slow to send its response head must not leave the client with nothing:
proxies cut a request that has sent no byte (nginx after 60 s, Heroku's router after
30 s). :func:`open_within` runs the open in its own greenlet and waits up to
``AI_SSE_KEEPALIVE`` seconds for the status. Known by then, nothing changes: the open
stream is returned, or its error raised (an HTTP error, 502/504/429). Not known: a
:class:`PendingChunkStream` is returned, the response starts (``retry``, ``start``,
keepalives) and the producer finishes the wait; a failure after it (retries and
fallbacks included) is the stream's ``event: error``.

::

    request greenlet                         opener greenlet (the request's context copied)
    open_within ──spawn───────────────────▶  open_(signal): provider.open_abortable(...)
       │ waits ≤ AI_SSE_KEEPALIVE                 │ status known ─▶ done
       ├─ done: the stream, or raise its error    │
       └─ not yet: PendingChunkStream ─▶ Engine.start ─▶ the response starts
             producer: waits for done, then reads the stream it got
             abort() (disconnect grace, cancel, timeout, shutdown): signal.abort()
               shuts the connection in use and ends a retry's backoff; repeated
               every RESHUT_INTERVAL until the open returns (a connect in progress
               has no socket to shut yet)
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator

from ..chunks import Chunk
from ..providers.base import AbortSignal, ChunkStream
from .spawn import spawn

#: Opens the upstream answer, stoppable through the signal (``Provider.open_abortable``).
OpenFn = Callable[[AbortSignal], ChunkStream]

#: Seconds between repeated aborts of an open that has not returned yet.
RESHUT_INTERVAL = 0.25


class _Opening:
    """One open running in its own greenlet, and its outcome once ``done``."""

    def __init__(self, open_: OpenFn) -> None:
        self.open = open_
        self.signal = AbortSignal()
        self.lock = threading.Lock()
        self.done = threading.Event()
        #: Set when the open returned or was aborted: what a waiting producer wakes on.
        self.changed = threading.Event()
        self.stream: ChunkStream | None = None
        self.error: Exception | None = None
        #: Nobody will read the stream: the opener closes what it gets.
        self.abandoned = False

    def run(self) -> None:
        stream: ChunkStream | None = None
        error: Exception | None = None
        try:
            stream = self.open(self.signal)
        except Exception as exc:  # handed to whoever waits for it
            error = exc
        finally:
            with self.lock:
                self.stream, self.error = stream, error
                abandoned = self.abandoned
                self.done.set()
                self.changed.set()
        if abandoned and stream is not None:
            stream.close()

    def abort(self) -> None:
        self.signal.abort()
        self.changed.set()


def open_within(open_: OpenFn, seconds: float, *, provider: str, model: str) -> ChunkStream:
    """``open_``'s stream if the provider's status is known within ``seconds`` (or its
    error, raised), else a :class:`PendingChunkStream` that finishes the open and names
    ``provider`` and ``model`` until then.

    The opener runs in a copy of the caller's context: the app context and a trace
    span that were current stay so.
    """
    opening = _Opening(open_)
    context = contextvars.copy_context()
    spawn(functools.partial(context.run, opening.run), name="ai-sse-open")
    if opening.done.wait(seconds):
        if opening.error is not None:
            raise opening.error
        assert opening.stream is not None
        return opening.stream
    return PendingChunkStream(opening, provider=provider, model=model)


class PendingChunkStream(ChunkStream):
    """A stream whose open is still running: it names the provider and model asked for
    until the open returns, then those of whoever answered (a fallback may)."""

    def __init__(self, opening: _Opening, *, provider: str, model: str) -> None:
        super().__init__(provider=provider, model=model)
        self._opening = opening
        self._inner: ChunkStream | None = None

    def __iter__(self) -> Iterator[Chunk]:
        try:
            inner = self._opened()
            if inner is not None:
                self.provider = inner.provider
                for chunk in inner:
                    self.model = inner.model
                    yield chunk
        finally:
            self.close()

    def _opened(self) -> ChunkStream | None:
        """Wait for the open; the stream it returned, ``None`` once aborted, or its error."""
        opening = self._opening
        opening.changed.wait()
        while not opening.done.wait(RESHUT_INTERVAL):
            opening.signal.abort()  # only after an abort: shut what connected since
        if self.aborted:
            return None
        if opening.error is not None:
            raise opening.error
        self._inner = opening.stream
        # abort() sets the flag before it looks at _inner; we set _inner before we look
        # at the flag: whichever comes second sees the other.
        return None if self.aborted else self._inner

    def abort(self) -> None:
        super().abort()
        self._opening.abort()
        inner = self._inner
        if inner is not None:
            inner.abort()

    def close(self) -> None:
        opening = self._opening
        with opening.lock:
            opening.abandoned = True
            stream = opening.stream
            done = opening.done.is_set()
        if stream is not None:
            stream.close()
        elif not done:
            opening.signal.abort()  # whatever it opens now, it closes itself
