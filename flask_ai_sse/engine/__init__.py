"""The stream engine: producers write stream logs, readers serve them to clients.

::

    Engine.start(chunks) --> Generation (own greenlet) --append--> StreamStore
                                   ^                                   |
                         abort()   |  watchdog: timeouts, grace        | read(after, keepalive)
                                   |                                   v
    Engine.cancel(id) --signal--> store --signal--> handler     StreamReader (WSGI body)

Nothing here imports Flask: the extension turns readers into responses.
"""

from __future__ import annotations

import functools
import heapq
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import constants as C
from .._redis_client import SCHEMES as REDIS_SCHEMES
from .._redis_client import RedisOptions
from .._usage import Price
from ..errors import ConfigurationError, NotFound, StoreError
from ..protocols import PROTOCOLS, create_encoder
from ..providers.base import ChunkStream
from .generation import Generation, Observer
from .reader import StreamReader
from .store import HEARTBEAT, MemoryStore, StreamStore

logger = logging.getLogger("flask_ai_sse")

__all__ = [
    "Engine",
    "EngineListener",
    "EngineSettings",
    "Generation",
    "MemoryStore",
    "Observer",
    "StreamReader",
    "StreamStore",
    "create_store",
]


#: Seconds before the watchdog asks a failing store again about an orphaned stream.
WATCHDOG_RETRY = 1.0


def create_store(
    url: str | StreamStore,
    *,
    ttl: float,
    max_events: int,
    redis_options: RedisOptions | None = None,
    outage_budget: float = C.DEFAULTS[C.STORE_OUTAGE_BUDGET],
) -> StreamStore:
    """The store ``AI_SSE_STORE`` names: ``memory``, a Redis URL, or a ready :class:`StreamStore`.

    With Redis, a producer beats every :data:`HEARTBEAT` seconds and counts as lost
    after ``outage_budget + 3 * HEARTBEAT`` seconds without a beat: longer than any
    Redis outage the streams are meant to ride out, so a stall is never taken for a
    dead worker.
    """
    if isinstance(url, StreamStore):
        return url
    if url in ("memory", "memory://"):
        return MemoryStore(ttl=ttl, max_events=max_events)
    if isinstance(url, str) and url.startswith(REDIS_SCHEMES):
        # Loaded only for a Redis URL: the 'redis' package is an optional extra.
        from .redis_store import RedisStore

        return RedisStore(
            url,
            ttl=ttl,
            max_events=max_events,
            options=redis_options,
            heartbeat=HEARTBEAT,
            lapse=outage_budget + 3 * HEARTBEAT,
        )
    raise ConfigurationError(
        f"AI_SSE_STORE must be 'memory' or a redis:// (or redis+sentinel://) URL, not {url!r}."
    )


@dataclass(frozen=True)
class EngineSettings:
    """The engine's share of the settings; the defaults are those of ``constants.DEFAULTS``."""

    keepalive: float = C.DEFAULTS[C.KEEPALIVE]
    retry: int = C.DEFAULTS[C.RETRY]
    disconnect_grace: float = C.DEFAULTS[C.DISCONNECT_GRACE]
    #: ``cancel``: stop a generation nobody reads after the grace; ``finish``: run it to the end.
    disconnect_policy: str = C.DEFAULTS[C.DISCONNECT_POLICY]
    total_timeout: float = C.DEFAULTS[C.STREAM_TIMEOUT]
    silence_timeout: float = C.DEFAULTS[C.READ_TIMEOUT]
    flush_interval: float = C.DEFAULTS[C.FLUSH_INTERVAL]
    progress_every: int = C.DEFAULTS[C.PROGRESS_EVERY]
    sentence_mode: bool = C.DEFAULTS[C.SENTENCE_MODE]
    #: ``AI_SSE_PRICES``, parsed: usage turns into cost at every stream's end.
    prices: Mapping[str, Price] = field(default_factory=dict)
    #: Seconds a store outage may last without ending running streams.
    store_outage_budget: float = C.DEFAULTS[C.STORE_OUTAGE_BUDGET]


class EngineListener(Protocol):
    """Counts what happens to readers (metrics); called in the request, must be quick."""

    def reader_opened(self, kind: str) -> None:
        """``kind``: ``first`` (the response that started it), ``attach`` or ``resume``."""

    def reader_closed(self) -> None: ...

    def store_timed(self, operation: str, seconds: float, failed: bool) -> None:
        """A store operation of a stream's life (``create``, ``lookup``), not per event."""


class Engine:
    """Per-app engine: the store, the live generations of this process, a watchdog."""

    def __init__(self, store: StreamStore, settings: EngineSettings) -> None:
        self.store = store
        self.settings = settings
        self.active: dict[str, Generation] = {}
        self.listener: EngineListener | None = None
        self._watchdog: threading.Thread | None = None
        self._lock = threading.Lock()
        self._heap: list[tuple[float, str]] = []
        self._due_at: dict[str, float] = {}
        limits = [
            t
            for t in (settings.disconnect_grace, settings.silence_timeout, settings.total_timeout)
            if t > 0
        ]
        self._tick = min(1.0, max(0.05, min(limits, default=4.0) / 4))

    @staticmethod
    def new_stream_id() -> str:
        """Unguessable: 128 random bits."""
        return secrets.token_urlsafe(16)

    def start(
        self,
        chunks: ChunkStream,
        *,
        stream_id: str | None = None,
        start: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        observers: Sequence[Observer] = (),
        prompt_estimate: int = 0,
        wrap: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
    ) -> Generation:
        """Run a generation over ``chunks``; it writes its ``start`` event before returning.

        ``prompt_estimate`` (input tokens) stands in when the provider reports no
        usage; ``wrap`` wraps the producer's run (e.g. to carry a trace context).
        """
        stream_id = stream_id or self.new_stream_id()
        start_data = {"stream_id": stream_id, "model": chunks.model, "provider": chunks.provider}
        start_data.update(start or {})
        # When it started, for protocols that stamp every event with it (the same for all).
        meta = {"created": int(time.time()), **(meta or {})}
        generation = Generation(
            stream_id=stream_id,
            store=self.store,
            chunks=chunks,
            start=start_data,
            meta=meta,
            observers=observers,
            progress_every=self.settings.progress_every,
            sentence_mode=self.settings.sentence_mode,
            on_orphaned=self._schedule,
            on_done=self._forget,
            prompt_estimate=prompt_estimate,
            prices=self.settings.prices,
            wrap=wrap,
            outage_budget=self.settings.store_outage_budget,
            max_unwritten=getattr(self.store, "max_events", 10000),
        )
        self.active[stream_id] = generation
        self._ensure_watchdog()
        began = time.monotonic()
        try:
            generation.start()
        except BaseException as exc:  # e.g. the store is down: the upstream must not leak
            self._timed("create", began, failed=isinstance(exc, StoreError))
            self._forget(generation)
            chunks.close()
            raise
        self._timed("create", began)
        self._schedule(generation)
        return generation

    def check_store(self) -> None:
        """Raise :class:`StoreError` (a 503) if the store cannot take a new stream now.

        Called before a new stream opens its upstream request, which costs money:
        a store that is down must not let requests through to the provider.
        """
        self.store.check()

    def _check_owner(self, stream_id: str, owner: str | None) -> dict[str, Any]:
        """One lookup: the stream exists and is ``owner``'s (``None``: anonymous)."""
        began = time.monotonic()
        try:
            meta = self.store.meta(stream_id)
        except StoreError:
            self._timed("lookup", began, failed=True)
            raise
        self._timed("lookup", began)
        if meta is None or meta.get("owner") != owner:
            raise NotFound("Unknown or expired stream.")
        return meta

    def reader(
        self,
        stream_id: str,
        after: int = 0,
        *,
        owner: str | None = None,
        protocol: str = "default",
        options: dict[str, Any] | None = None,
    ) -> StreamReader:
        """A response body that replays ``stream_id`` after ``after``, then follows it live,
        in ``protocol`` (see :mod:`flask_ai_sse.protocols`; ``options`` go to its encoder).

        Unknown, expired and other owners' streams are all the same 404.
        """
        meta = self._check_owner(stream_id, owner)
        options = {"created": meta.get("created") or 0, **(options or {})}
        kind = "resume" if after else "attach"
        return self.follow(stream_id, after, protocol=protocol, options=options, kind=kind)

    def follow(
        self,
        stream_id: str,
        after: int = 0,
        *,
        protocol: str = "default",
        options: dict[str, Any] | None = None,
        kind: str = "first",
    ) -> StreamReader:
        """A reader of a stream known to be the caller's (one it just started): no lookup.

        ``options`` go to the protocol's encoder (``created``: the stream's start time);
        ``kind`` (``first``, ``attach``, ``resume``) is what the engine's listener counts.
        """
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}")
        encoder = create_encoder(protocol, stream_id, retry=self.settings.retry, **(options or {}))
        self.store.attach(stream_id)
        if self.listener is not None:
            self.listener.reader_opened(kind)
        return StreamReader(
            functools.partial(self.store.read, stream_id),
            after,
            prefix=encoder.prefix,
            keepalive=self.settings.keepalive,
            keepalive_bytes=encoder.keepalive,
            flush_interval=self.settings.flush_interval,
            on_close=functools.partial(self._detached, stream_id),
            encoder=encoder,
            outage_budget=self.settings.store_outage_budget,
        )

    def _timed(self, operation: str, began: float, *, failed: bool = False) -> None:
        if self.listener is not None:
            self.listener.store_timed(operation, time.monotonic() - began, failed)

    def _detached(self, stream_id: str) -> None:
        if self.listener is not None:
            self.listener.reader_closed()
        try:
            if self.store.detach(stream_id) == 0:
                self.store.signal(stream_id, "orphaned")
        except StoreError:  # closing a response must not raise; the store logged the cause
            pass

    def cancel(self, stream_id: str, *, owner: str | None = None) -> bool:
        """Stop a generation wherever it runs; False when unknown or another owner's."""
        try:
            self._check_owner(stream_id, owner)
        except NotFound:
            return False
        return self.store.signal(stream_id, "cancelled")

    # -- watchdog: total and silence timeouts, disconnect grace -----------------

    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(
                    target=self._watch, name="ai-sse-watchdog", daemon=True
                )
                self._watchdog.start()

    def _watch(self) -> None:
        """Runs for the life of the process: no error may end it (it would take every
        timeout and disconnect grace of this process with it)."""
        while True:
            time.sleep(self._tick)
            try:
                self.check(time.monotonic())
            except Exception:
                logger.exception("stream watchdog: a check failed; it goes on")

    def _due(self, gen: Generation) -> float | None:
        """When ``gen`` next needs a look: a timeout, or the end of its disconnect grace."""
        s = self.settings
        times = []
        if s.total_timeout > 0:
            times.append(gen.started_at + s.total_timeout)
        if s.silence_timeout > 0:
            times.append(gen.last_activity + s.silence_timeout)
        if s.disconnect_policy == "cancel" and gen.orphaned_at is not None:
            times.append(gen.orphaned_at + s.disconnect_grace)
        return min(times, default=None)

    def _schedule(self, gen: Generation) -> None:
        due = self._due(gen)
        if due is not None:
            self._schedule_at(gen, due)

    def _schedule_at(self, gen: Generation, due: float) -> None:
        with self._lock:
            if gen.stream_id not in self.active:  # it ended already
                return
            self._due_at[gen.stream_id] = due
            heapq.heappush(self._heap, (due, gen.stream_id))

    def _forget(self, gen: Generation) -> None:
        with self._lock:
            self.active.pop(gen.stream_id, None)
            self._due_at.pop(gen.stream_id, None)

    def check(self, now: float) -> None:
        """Abort generations past a timeout, or orphaned past the grace.

        Only generations whose time has come are looked at (a heap of due times),
        so a tick costs nothing per quiet stream however many are open. A due time
        that moved on (a newer entry) is stale and skipped.
        """
        s = self.settings
        while self._heap and self._heap[0][0] <= now:
            with self._lock:
                due, stream_id = heapq.heappop(self._heap)
                gen = self.active.get(stream_id)
                if gen is None or self._due_at.get(stream_id) != due:
                    continue
                del self._due_at[stream_id]
            if gen.done.is_set():
                continue
            if (0 < s.total_timeout <= now - gen.started_at) or (
                0 < s.silence_timeout <= now - gen.last_activity
            ):
                gen.abort("timeout")
                continue
            if (
                s.disconnect_policy == "cancel"
                and gen.orphaned_at is not None
                and now - gen.orphaned_at >= s.disconnect_grace
            ):
                try:
                    listeners = self.store.listeners(stream_id)
                except StoreError:  # logged by the store; look again in a moment
                    self._schedule_at(gen, now + WATCHDOG_RETRY)
                    continue
                if listeners == 0:
                    gen.abort("disconnected")
                    continue
                gen.orphaned_at = None
            self._schedule(gen)
