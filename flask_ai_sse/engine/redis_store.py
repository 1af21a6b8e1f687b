"""The Redis store: stream logs on Redis Streams, shared by every worker and host.

A client may reconnect to any worker, a second client may follow from another
host, and a cancel may arrive anywhere: all of them read the same log, and
signals reach the producer through pub/sub. Keys (``prefix`` is ``ai_sse:`` by
default; the braces keep one stream's keys in one cluster slot)::

    ai_sse:{<id>}:log    stream: entry 0-<seq>, field d = one encoded event; the
                         last entry also has end=1
    ai_sse:{<id>}:meta   hash: meta (JSON), listeners, last (seq written), end, cancelled
    ai_sse:signals       pub/sub channel, messages "<signal> <stream id>"

Expiry: while a stream runs its keys live ``lease`` seconds, refreshed by every
append and by this process's listener every ``lease / 3`` seconds, so the log of
a worker that died mid-stream goes away (its readers end) instead of lingering;
once ended they live ``ttl`` seconds. ``MAXLEN ~`` keeps at least ``max_events``
entries; a reader that needs a trimmed one gets :class:`StreamGapError`, as with
the memory store.

Waiting readers block in ``XREAD BLOCK`` on a pool of their own whose socket
timeout exceeds the longest block, so a lost Redis fails a read instead of
hanging it. Every Redis error becomes :class:`StoreError` in :func:`_translated`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError, StreamGapError
from .store import ReadResult, SignalHandler, StreamStore

try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.client import PubSub
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised with redis hidden
    raise ConfigurationError(
        "AI_SSE_STORE names a Redis URL but the 'redis' package is not installed:"
        " pip install 'flask-ai-sse[redis]'."
    ) from exc

__all__ = ["RedisStore"]

logger = logging.getLogger("flask_ai_sse")

#: Idempotent (a retried call skips what it already wrote) and atomic, so a
#: reader never sees the end flag without the entries before it.
#: KEYS: log, meta. ARGV: first seq, maxlen (0: none), expiry ms, final (0/1), entries...
_APPEND = """
if redis.call('exists', KEYS[2]) == 0 then return -1 end
local last = tonumber(redis.call('hget', KEYS[2], 'last') or '0')
local first, n, final = tonumber(ARGV[1]), #ARGV - 4, ARGV[4] == '1'
for i = 1, n do
  local seq = first + i - 1
  if seq > last then
    local cmd = {'xadd', KEYS[1]}
    if ARGV[2] ~= '0' then
      cmd[#cmd + 1] = 'maxlen'; cmd[#cmd + 1] = '~'; cmd[#cmd + 1] = ARGV[2]
    end
    cmd[#cmd + 1] = '0-' .. seq; cmd[#cmd + 1] = 'd'; cmd[#cmd + 1] = ARGV[4 + i]
    if final and i == n then cmd[#cmd + 1] = 'end'; cmd[#cmd + 1] = '1' end
    redis.call(unpack(cmd))
  end
end
last = math.max(last, first + n - 1)
redis.call('hset', KEYS[2], 'last', last)
if final then redis.call('hset', KEYS[2], 'end', last) end
redis.call('pexpire', KEYS[1], ARGV[3])
redis.call('pexpire', KEYS[2], ARGV[3])
return last
"""

#: KEYS: meta. ARGV: +1 or -1. Never creates the hash of an expired stream; never below 0.
_LISTENERS = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
local n = redis.call('hincrby', KEYS[1], 'listeners', ARGV[1])
if n < 0 then redis.call('hset', KEYS[1], 'listeners', 0); return 0 end
return n
"""

#: KEYS: meta. ARGV: channel, signal, stream id. A cancel is also written down so
#: that a listener which was reconnecting when it was published still sees it.
_SIGNAL = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
if ARGV[2] == 'cancelled' then redis.call('hset', KEYS[1], 'cancelled', 1) end
redis.call('publish', ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""

#: KEYS: log, meta pairs of running streams. ARGV: lease ms. Ended streams keep their ttl.
_HEARTBEAT = """
for i = 1, #KEYS, 2 do
  if redis.call('exists', KEYS[i + 1]) == 1 and redis.call('hexists', KEYS[i + 1], 'end') == 0 then
    redis.call('pexpire', KEYS[i], ARGV[1])
    redis.call('pexpire', KEYS[i + 1], ARGV[1])
  end
end
return 0
"""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """The one boundary where Redis errors become the project's own."""
    try:
        yield
    except redis.RedisError as exc:
        logger.warning("stream store: %s: %s", type(exc).__name__, exc)
        raise StoreError() from exc


def _pop_query(url: str, name: str) -> tuple[str, str | None]:
    """``url`` without the query parameter ``name`` (which redis-py would reject), and its value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in query if k == name), None)
    rest = urlencode([(k, v) for k, v in query if k != name])
    return urlunsplit(parts._replace(query=rest)), value


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore(StreamStore):
    """Stream logs in Redis, for several workers or hosts (``AI_SSE_STORE = "redis://..."``).

    ``url`` is a redis-py URL; its query may set redis-py connection options
    (``socket_timeout``, ``max_connections``, ...) and ``prefix``, the key prefix.
    Connections are made lazily: creating a store contacts nobody.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 600.0,
        max_events: int = 20000,
        prefix: str = "ai_sse:",
        lease: float = 60.0,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_block: float = 20.0,
        max_connections: int = 10_000,
    ) -> None:
        url, url_prefix = _pop_query(url, "prefix")
        self.prefix = url_prefix if url_prefix is not None else prefix
        self.ttl = ttl
        self.max_events = max_events
        self.lease = lease
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            # A few quick retries ride out a restart; a long backoff would hang clients.
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
            "max_connections": max_connections,
            "protocol": 2,
        }
        try:
            self._pool = redis.ConnectionPool.from_url(url, **options)
        except ValueError as exc:
            raise ConfigurationError(f"AI_SSE_STORE is not a usable Redis URL: {exc}") from exc
        kwargs = dict(self._pool.connection_kwargs)
        if str(kwargs.get("protocol")) != "2":
            raise ConfigurationError(
                "The Redis stream store speaks RESP2: drop 'protocol' from the URL."
            )
        #: A read blocks at most this long per XREAD; its socket may wait a little longer.
        self._max_block = max_block
        kwargs["socket_timeout"] = (kwargs.get("socket_timeout") or socket_timeout) + max_block
        self._blocking_pool = redis.ConnectionPool(
            connection_class=self._pool.connection_class,
            max_connections=self._pool.max_connections,
            **kwargs,
        )
        self._redis = redis.Redis(connection_pool=self._pool)
        self._blocking = redis.Redis(connection_pool=self._blocking_pool)
        self._append = self._redis.register_script(_APPEND)
        self._listeners = self._redis.register_script(_LISTENERS)
        self._signal = self._redis.register_script(_SIGNAL)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._channel = f"{self.prefix}signals"
        #: Last sequence number written, per stream this process produces.
        self._written: dict[str, int] = {}
        self._handlers: dict[str, SignalHandler] = {}
        self._listener: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def _keys(self, stream_id: str) -> tuple[str, str]:
        base = f"{self.prefix}{{{stream_id}}}"
        return f"{base}:log", f"{base}:meta"

    # -- the log ------------------------------------------------------------------

    def create(self, stream_id: str, meta: dict[str, Any]) -> None:
        log, meta_key = self._keys(stream_id)
        with _translated():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(log, meta_key)
            pipe.hset(meta_key, mapping={"meta": json.dumps(meta, default=str), "last": 0})
            pipe.pexpire(meta_key, _ms(self.lease))
            pipe.execute()
        self._written[stream_id] = 0

    def append(self, stream_id: str, entries: list[bytes], *, final: bool = False) -> int:
        first = self._written[stream_id] + 1
        args: list[Any] = [first, self.max_events, _ms(self.ttl if final else self.lease)]
        with _translated():
            last = int(self._append(keys=self._keys(stream_id), args=[*args, int(final), *entries]))
        if last < 0:
            raise StoreError("The stream expired in the store before it ended.")
        if final:
            self._written.pop(stream_id, None)
        else:
            self._written[stream_id] = last
        return last

    def read(self, stream_id: str, after: int, timeout: float) -> ReadResult | None:
        log, meta_key = self._keys(stream_id)
        end = None
        with _translated():
            # Following live: one XREAD per wake-up. Only when it brings nothing is the
            # stream's state looked at (unknown, or ended with nothing after ``after``).
            entries = self._follow(log, after, timeout) if timeout > 0 else []
            if not entries:
                pipe = self._redis.pipeline(transaction=True)
                pipe.hexists(meta_key, "meta")
                pipe.hget(meta_key, "end")
                pipe.xrange(log, min=f"0-{after + 1}")
                known, end, entries = pipe.execute()
                if not known:
                    return None
        if entries and _seq(entries[0][0]) != after + 1:
            raise StreamGapError()
        ended = b"end" in entries[-1][1] if entries else end is not None
        return [fields[b"d"] for _, fields in entries], ended

    def _follow(self, log: str, after: int, timeout: float) -> list[Any]:
        """Entries after ``after``, waiting up to ``timeout`` in XREAD BLOCKs of bounded length."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            block = _ms(min(remaining, self._max_block))
            found: Any = self._blocking.xread({log: f"0-{after}"}, block=block)
            if found:  # RESP2: [[key, entries]]
                return list(found[0][1])
        return []

    def meta(self, stream_id: str) -> dict[str, Any] | None:
        with _translated():
            raw = self._redis.hget(self._keys(stream_id)[1], "meta")
        return None if raw is None else dict(json.loads(raw))

    # -- readers ------------------------------------------------------------------

    def attach(self, stream_id: str) -> int:
        return self._count(stream_id, 1)

    def detach(self, stream_id: str) -> int:
        return self._count(stream_id, -1)

    def _count(self, stream_id: str, delta: int) -> int:
        with _translated():
            return int(self._listeners(keys=[self._keys(stream_id)[1]], args=[delta]))

    def listeners(self, stream_id: str) -> int:
        with _translated():
            return int(self._redis.hget(self._keys(stream_id)[1], "listeners") or 0)

    # -- signals --------------------------------------------------------------------

    def watch(self, stream_id: str, handler: SignalHandler) -> None:
        self._handlers[stream_id] = handler
        self._ensure_listener()

    def unwatch(self, stream_id: str) -> None:
        self._handlers.pop(stream_id, None)
        self._written.pop(stream_id, None)

    def signal(self, stream_id: str, name: str) -> bool:
        with _translated():
            sent = self._signal(
                keys=[self._keys(stream_id)[1]], args=[self._channel, name, stream_id]
            )
        return bool(sent)

    def _ensure_listener(self) -> None:
        """Start this process's one listener, or a new one if it died."""
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            with _translated():
                pubsub = self._subscribe()
            self._listener = threading.Thread(
                target=self._listen, args=(pubsub,), name="ai-sse-redis-signals", daemon=True
            )
            self._listener.start()

    def _subscribe(self) -> PubSub:
        """A subscribed PubSub; waits for Redis to confirm, so no later signal is missed."""
        pubsub: PubSub = self._redis.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
            deadline = time.monotonic() + self._pool.connection_kwargs["socket_timeout"]
            while (remaining := deadline - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
            raise redis.TimeoutError("Redis did not confirm the subscription.")
        except BaseException:
            pubsub.close()
            raise

    def _listen(self, pubsub: PubSub | None) -> None:
        """Dispatch signals to this process's producers and keep their streams' keys alive."""
        beat = self.lease / 3
        next_beat = time.monotonic() + beat
        while not self._closed.is_set():
            try:
                if pubsub is None:
                    pubsub = self._subscribe()
                    self._recover()
                # The timeout is also how soon close() is noticed.
                message = pubsub.get_message(timeout=min(0.25, beat))
                if message is not None and message["type"] == "message":
                    name, _, stream_id = message["data"].decode().partition(" ")
                    self._dispatch(stream_id, name)
                elif message is not None and message["type"] == "subscribe":
                    self._recover()  # redis-py reconnected by itself: catch up
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + beat
                    self._keep_alive()
            except Exception as exc:  # Redis failed (or a bug): start over rather than die
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                    pubsub = None
                if not self._closed.is_set():
                    unexpected = not isinstance(exc, redis.RedisError | OSError)
                    logger.warning(
                        "Redis signal listener: %s: %s; reconnecting",
                        type(exc).__name__,
                        exc,
                        exc_info=unexpected,
                    )
                    self._closed.wait(1.0)
        if pubsub is not None:
            pubsub.close()

    def _dispatch(self, stream_id: str, name: str) -> None:
        handler = self._handlers.get(stream_id)
        if handler is not None:
            try:
                handler(name)
            except Exception:
                logger.exception("signal handler of stream %s failed", stream_id)

    def _recover(self) -> None:
        """After a (re)subscription: deliver what may have been published meanwhile."""
        ids = list(self._handlers)
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for stream_id in ids:
            pipe.hmget(self._keys(stream_id)[1], ["cancelled", "listeners"])
        for stream_id, (cancelled, listeners) in zip(ids, pipe.execute(), strict=True):
            if cancelled:
                self._dispatch(stream_id, "cancelled")
            elif not int(listeners or 0):
                self._dispatch(stream_id, "orphaned")  # harmless if untrue: the engine re-checks

    def _keep_alive(self) -> None:
        keys: list[str] = []
        for stream_id in list(self._handlers):
            keys.extend(self._keys(stream_id))
        if keys:
            self._heartbeat(keys=keys, args=[_ms(self.lease)])

    def close(self) -> None:
        """Stop the listener and release every connection."""
        self._closed.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)
        self._pool.disconnect()
        self._blocking_pool.disconnect()


def _seq(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[2])
