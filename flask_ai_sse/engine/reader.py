"""The reader: the WSGI body of an SSE response, reading a stream log.

It is a class rather than a generator so that the server's ``close()`` always
runs, even when the client left before the first byte was sent (a generator
that never started skips its ``finally``). A keepalive comment goes out after
``keepalive`` seconds of silence; since a WSGI app only learns of a disconnect
when a write fails, keepalives are also the disconnect probe.

With an ``encoder`` (a :class:`~flask_ai_sse.protocols.Encoder`), the log holds
neutral events and this reader sends them in the encoder's protocol; without
one, the log holds bytes that are sent as they are (custom streams).

A store that fails (Redis stalled or restarting) does not end the response at
once: keepalives go on while it fails for less than ``outage_budget`` seconds,
and the reader picks up where it was when the store answers again. Past the
budget the response ends with one error (``store_unavailable``) and ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from ..errors import AISSEError, NotFound, StoreError
from ..protocols import Encoder
from ..sse import DONE, encode
from .store import ReadResult

ReadFn = Callable[[int, float], "ReadResult | None"]


class StreamReader(Iterator[bytes]):
    """Yields ``prefix``, then the log's entries after ``after``, until the final one."""

    def __init__(
        self,
        read: ReadFn,
        after: int,
        *,
        prefix: bytes = b"",
        keepalive: float = 15.0,
        keepalive_bytes: bytes = b": keepalive\n\n",
        flush_interval: float = 0.0,
        on_close: Callable[[], None] | None = None,
        event_id: Callable[[int], str] | None = None,
        encoder: Encoder | None = None,
        outage_budget: float = 0.0,
    ) -> None:
        self._outage_budget = outage_budget
        #: Since when reads fail (``None``: they do not).
        self._failing_since: float | None = None
        self._read = read
        self._after = after
        self._prefix = prefix
        self._keepalive = keepalive if keepalive > 0 else 3600.0
        self._keepalive_bytes = keepalive_bytes
        self._flush_interval = flush_interval
        self._on_close = on_close
        self._event_id = event_id
        self._encoder = encoder
        # A stateful protocol resuming mid-stream first learns what was sent before.
        self._prime = encoder is not None and encoder.stateful and after > 0
        self.finished = False
        self.closed = False

    def __iter__(self) -> StreamReader:
        return self

    def __next__(self) -> bytes:
        if self.finished or self.closed:
            raise StopIteration
        if self._prefix:
            # Headers, retry and whatever is already in the log leave in one write.
            out, self._prefix = self._prefix, b""
            return out + self._take(0.0)
        body = self._take(self._keepalive)
        if body:
            return body
        if self.finished:
            raise StopIteration
        return self._keepalive_bytes

    def _take(self, timeout: float) -> bytes:
        """What the log has for this client, waiting up to ``timeout``; during a
        store outage within the budget, nothing (a keepalive) until it has passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                body = self._take_once(max(0.0, deadline - time.monotonic()))
            except StoreError as exc:
                now = time.monotonic()
                if self._failing_since is None:
                    self._failing_since = now
                if now - self._failing_since >= self._outage_budget:
                    return self._error(exc)
                if now >= deadline:
                    return b""
                time.sleep(min(0.25, deadline - now))  # the store refused at once: pace retries
                continue
            self._failing_since = None
            return body

    def _error(self, exc: AISSEError) -> bytes:
        """End the response with ``exc``; the id repeats the last one sent: resume stays exact."""
        self.finished = True
        if self._encoder is not None:
            return self._encoder.failure(self._after, exc.to_dict())
        event_id = self._event_id(self._after) if self._event_id else None
        return encode(exc.to_dict(), event="error", id=event_id) + DONE

    def _take_once(self, timeout: float) -> bytes:
        first = self._after + 1
        try:
            if self._prime:
                self._prime_encoder()
            result = self._read(self._after, timeout)
            if result is None:  # expired under us: end the response rather than hang
                raise NotFound("The stream expired.")
            entries, final = result
            if entries and self._flush_interval > 0 and not final:
                time.sleep(self._flush_interval)  # let more tokens arrive: one write for all
                more = self._read(self._after + len(entries), 0.0)
                if more:
                    entries = entries + more[0]
                    final = more[1]
        except StoreError:
            raise
        except AISSEError as exc:
            # The stream expired or dropped what this reader missed: say so, and end cleanly.
            return self._error(exc)
        self._after += len(entries)
        if final:
            self.finished = True
        return self._encode(first, entries)

    def _encode(self, first: int, entries: Sequence[bytes]) -> bytes:
        if self._encoder is None:
            return b"".join(entries)
        return self._encoder.encode(first, entries) if entries else b""

    def _prime_encoder(self) -> None:
        """Feed the events before the resume point to the encoder, sending nothing."""
        assert self._encoder is not None
        result = self._read(0, 0.0)  # a store failure here is retried at the next read
        if result is None:
            raise NotFound("The stream expired.")
        self._encoder.skip(1, result[0][: self._after])
        self._prime = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._on_close is not None:
                self._on_close()
