"""The reader: the WSGI body of an SSE response, reading a stream log.

It is a class rather than a generator so that the server's ``close()`` always
runs, even when the client left before the first byte was sent (a generator
that never started skips its ``finally``). A keepalive comment goes out after
``keepalive`` seconds of silence; since a WSGI app only learns of a disconnect
when a write fails, keepalives are also the disconnect probe.

With an ``encoder`` (a :class:`~flask_ai_sse.protocols.Encoder`), the log holds
neutral events and this reader sends them in the encoder's protocol; without
one, the log holds bytes that are sent as they are (custom streams).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from ..errors import AISSEError, NotFound
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
    ) -> None:
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
        except AISSEError as exc:
            # The store failed, expired the stream or dropped what this reader missed: say
            # so, and end cleanly. The id repeats the last one sent: resume stays exact.
            self.finished = True
            if self._encoder is not None:
                return self._encoder.failure(self._after, exc.to_dict())
            event_id = self._event_id(self._after) if self._event_id else None
            return encode(exc.to_dict(), event="error", id=event_id) + DONE
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
        self._prime = False
        result = self._read(0, 0.0)
        if result is None:
            raise NotFound("The stream expired.")
        self._encoder.skip(1, result[0][: self._after])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._on_close is not None:
                self._on_close()
