"""Stream logs: where a generation's encoded events wait for their readers.

A log holds, per stream, the encoded events in order (sequence numbers from 1),
whether the final entry was written, the number of attached readers, and a
little metadata (owner, model, ...). Readers block in :meth:`StreamStore.read`
until something new arrives or a timeout passes (a keepalive is due). One
writer per stream (its producer), any number of readers: that is fan-out, and
replaying from a sequence number is resume.

``memory`` keeps logs in this process; ``redis://`` (see ``redis_store``) shares
them across workers and hosts.
"""

from __future__ import annotations

import abc
import heapq
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import StoreError, StreamGapError

#: Called with a signal name: ``cancelled`` (stop now) or ``orphaned`` (last reader left).
SignalHandler = Callable[[str], None]
#: What :meth:`StreamStore.read` returns: all entries after the position asked
#: for, and whether the stream has ended (so these are the last). ``None`` when
#: the stream is unknown.
ReadResult = tuple[list[bytes], bool]


#: Seconds between two heartbeats of a producer's process (shared stores).
HEARTBEAT = 2.0


class StreamLost(StoreError):
    """The stream is gone from the store, or was ended by another worker: writing on
    is pointless (unlike a plain :class:`StoreError`, which may pass)."""


class StreamLog:
    """One stream's events in memory; also used alone by ``event_stream()``.

    Waiting uses a wake-all signal: a plain Event that the writer sets and swaps
    for a fresh one. A reader takes the current Event and raises ``_armed``
    *before* it looks for new entries, and the writer appends *before* it looks
    at ``_armed``; so either the reader sees the new entries or the writer sees
    the flag and wakes it. When nobody waits (a fast reader, or none), appends
    allocate nothing. Under gevent's patched ``threading`` the Event is a
    greenlet-friendly one.
    """

    __slots__ = ("_armed", "_signal", "entries", "finished", "listeners", "meta", "offset")

    def __init__(self, meta: dict[str, Any] | None = None) -> None:
        self.entries: list[bytes] = []
        self.offset = 0  # sequence number of entries[0] minus one, after trimming
        self.finished = False
        self.listeners = 0
        self.meta: dict[str, Any] = meta or {}
        self._signal = threading.Event()
        self._armed = False

    @property
    def last_seq(self) -> int:
        return self.offset + len(self.entries)

    def append(self, entries: list[bytes], *, final: bool = False, cap: int = 0) -> int:
        self.entries.extend(entries)
        if cap and len(self.entries) > cap:
            drop = len(self.entries) - cap
            del self.entries[:drop]
            self.offset += drop
        if final:
            self.finished = True
        if self._armed:
            self._armed = False
            signal, self._signal = self._signal, threading.Event()
            signal.set()
        return self.last_seq

    def read(self, after: int, timeout: float) -> ReadResult:
        signal = self._signal
        self._armed = True
        if after >= self.last_seq and not self.finished and timeout > 0:
            signal.wait(timeout)
        if after < self.offset:
            raise StreamGapError(
                "The client fell too far behind; the events it missed were dropped."
            )
        new = self.entries[after - self.offset :]
        return new, self.finished


class StreamStore(abc.ABC):
    """The interface the engine and the blueprint use; see the module docstring."""

    #: Readers of a store shared across processes see the same streams.
    shared: bool = False
    #: Called with a stream id when this process ended a stream whose producer was
    #: lost (another worker died): e.g. to mark its stored message failed.
    on_interrupted: list[Callable[[str], object]]

    @abc.abstractmethod
    def create(self, stream_id: str, meta: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def append(self, stream_id: str, entries: list[bytes], *, final: bool = False) -> int:
        """Add encoded events; ``final`` marks the last one. Returns the last sequence number."""

    @abc.abstractmethod
    def read(self, stream_id: str, after: int, timeout: float) -> ReadResult | None:
        """Entries after sequence ``after``, waiting up to ``timeout`` for one."""

    @abc.abstractmethod
    def meta(self, stream_id: str) -> dict[str, Any] | None:
        """The stream's metadata, or ``None`` when it is unknown or expired."""

    @abc.abstractmethod
    def attach(self, stream_id: str) -> int:
        """Count a reader in; returns the number attached."""

    @abc.abstractmethod
    def detach(self, stream_id: str) -> int:
        """Count a reader out; returns the number still attached."""

    @abc.abstractmethod
    def listeners(self, stream_id: str) -> int: ...

    @abc.abstractmethod
    def watch(self, stream_id: str, handler: SignalHandler) -> None:
        """Call ``handler(signal)`` in this process when anyone signals the stream."""

    @abc.abstractmethod
    def unwatch(self, stream_id: str) -> None: ...

    @abc.abstractmethod
    def signal(self, stream_id: str, name: str) -> bool:
        """Tell the stream's producer, wherever it runs. False if the stream is unknown."""

    def check(self) -> None:  # noqa: B027 - optional hook, a no-op for memory
        """Raise :class:`StoreError` when the store cannot take a new stream now.

        Called before a new stream opens its (paid) upstream request.
        """

    def unwritten(self, stream_id: str) -> int:
        """Entries a failed :meth:`append` kept for the next one (0: all written).

        A store that can fail keeps the entries of a failed append, in order, and
        writes them first at the next append, with the same sequence numbers.
        """
        return 0

    def producer_alive(self, stream_id: str) -> bool | None:
        """Whether the stream's producer still runs; ``None`` when the stream is unknown.

        In one process (memory) a running stream's producer is alive by definition.
        """
        log_meta = self.meta(stream_id)
        return None if log_meta is None else True

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for memory
        """Release connections (a no-op for memory)."""


class MemoryStore(StreamStore):
    """Logs in this process: bounded per stream, expiring ``ttl`` seconds after the end."""

    def __init__(self, *, ttl: float = 600.0, max_events: int = 20000) -> None:
        self.on_interrupted = []
        self.ttl = ttl
        self.max_events = max_events
        self._logs: dict[str, StreamLog] = {}
        self._expiry: list[tuple[float, str]] = []
        self._handlers: dict[str, SignalHandler] = {}
        self._lock = threading.Lock()

    def _sweep(self) -> None:
        now = time.monotonic()
        while self._expiry and self._expiry[0][0] <= now:
            _, stream_id = heapq.heappop(self._expiry)
            self._logs.pop(stream_id, None)

    def create(self, stream_id: str, meta: dict[str, Any]) -> None:
        self._sweep()
        self._logs[stream_id] = StreamLog(meta)

    def append(self, stream_id: str, entries: list[bytes], *, final: bool = False) -> int:
        log = self._logs[stream_id]
        seq = log.append(entries, final=final, cap=self.max_events)
        if final:
            heapq.heappush(self._expiry, (time.monotonic() + self.ttl, stream_id))
        return seq

    def read(self, stream_id: str, after: int, timeout: float) -> ReadResult | None:
        log = self._logs.get(stream_id)
        return None if log is None else log.read(after, timeout)

    def meta(self, stream_id: str) -> dict[str, Any] | None:
        self._sweep()
        log = self._logs.get(stream_id)
        return None if log is None else log.meta

    def attach(self, stream_id: str) -> int:
        log = self._logs[stream_id]
        with self._lock:
            log.listeners += 1
            return log.listeners

    def detach(self, stream_id: str) -> int:
        log = self._logs.get(stream_id)
        if log is None:
            return 0
        with self._lock:
            log.listeners = max(0, log.listeners - 1)
            return log.listeners

    def listeners(self, stream_id: str) -> int:
        log = self._logs.get(stream_id)
        return 0 if log is None else log.listeners

    def producer_alive(self, stream_id: str) -> bool | None:
        log = self._logs.get(stream_id)
        return None if log is None else not log.finished

    def watch(self, stream_id: str, handler: SignalHandler) -> None:
        self._handlers[stream_id] = handler

    def unwatch(self, stream_id: str) -> None:
        self._handlers.pop(stream_id, None)

    def signal(self, stream_id: str, name: str) -> bool:
        if stream_id not in self._logs:
            return False
        handler = self._handlers.get(stream_id)
        if handler is not None:
            handler(name)
        return True
