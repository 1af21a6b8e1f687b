"""The Redis store: stream logs on Redis Streams, shared by every worker and host.

A client may reconnect to any worker, a second client may follow from another
host, and a cancel may arrive anywhere: all of them read the same log, and
signals reach the producer through pub/sub. Keys (``prefix`` is ``ai_sse:`` by
default; the braces keep one stream's keys in one cluster slot)::

    ai_sse:{<id>}:log    stream: entry 0-<seq>, field d = one encoded event; the
                         last entry also has end=1
    ai_sse:{<id>}:meta   hash: meta (JSON), listeners, last (seq written), end,
                         cancelled, beat (the producer's last heartbeat, Redis ms)
    ai_sse:signals       pub/sub channel, messages "<signal> <stream id>"

Writing. Appends are idempotent by sequence number: the script skips entries at
or below ``last``. An append whose reply was lost (a timeout while Redis applied
it) keeps its entries queued in this process, and the next append sends them
again with the same numbers, so the writer's position never falls behind the
log and the terminal event never lands on a used number. While Redis fails,
appends only queue (one attempt per ``retry_interval``); the producer decides
how long that may last (``AI_SSE_STORE_OUTAGE_BUDGET``).

Reading. Followers in a process share one reading loop (:class:`_Hub`): one
connection doing ``XREAD BLOCK`` over every followed stream, feeding a local
mirror of each (a :class:`StreamLog`) that the readers wait on. Connections per
process stay a small constant however many streams are open, readers wait on
local events (so keepalives keep their cadence while Redis stalls), and a token
costs one ``XREAD`` for all local readers instead of one per reader.

Liveness. The producer's process refreshes ``beat`` of its running streams every
``heartbeat`` seconds (with their expiry). The reading loop checks the streams it
follows at the same cadence: a stream whose ``beat`` is older than ``lapse`` has
lost its producer, and the first worker to see it writes ``event: error``
(``interrupted``) + ``[DONE]`` into the log itself, atomically, so readers on
every worker end the same way; the store's ``on_interrupted`` hooks run there.

Every Redis error becomes :class:`StoreError` (see :mod:`flask_ai_sse._redis_client`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._redis_client import RedisOptions, connect, redis_errors, translated
from ..errors import ConfigurationError, StoreError, StreamGapError, StreamInterrupted
from .protocol import END, pack
from .spawn import spawn
from .store import ReadResult, SignalHandler, StreamLog, StreamLost, StreamStore

try:
    import redis
    from redis.client import PubSub
except ImportError as exc:  # pragma: no cover - exercised with redis hidden
    raise ConfigurationError(
        "AI_SSE_STORE names a Redis URL but the 'redis' package is not installed:"
        " pip install 'flask-ai-sse[redis]'."
    ) from exc

__all__ = ["RedisOptions", "RedisStore"]

logger = logging.getLogger("flask_ai_sse")

#: KEYS: log, meta. ARGV: meta JSON, expiry ms. A fresh stream, beating from now.
_CREATE = """
redis.call('del', KEYS[1], KEYS[2])
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('hset', KEYS[2], 'meta', ARGV[1], 'last', 0, 'beat', now)
redis.call('pexpire', KEYS[2], ARGV[2])
return 1
"""

#: Idempotent (a retried call skips what it already wrote) and atomic, so a
#: reader never sees the end flag without the entries before it. Returns the last
#: sequence number, -1 when the stream is gone, -2 when someone else ended it.
#: KEYS: log, meta. ARGV: first seq, maxlen (0: none), expiry ms, final (0/1), entries...
_APPEND = """
local state = redis.call('hmget', KEYS[2], 'last', 'end')
if not state[1] then return -1 end
local last = tonumber(state[1])
local first, n, final = tonumber(ARGV[1]), #ARGV - 4, ARGV[4] == '1'
if state[2] and first + n - 1 > last then return -2 end
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

#: KEYS: log, meta pairs of this process's running streams. ARGV: lease ms.
#: The producer's heartbeat: ``beat`` now, keys kept alive. Ended streams keep their ttl.
_HEARTBEAT = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS, 2 do
  if redis.call('exists', KEYS[i + 1]) == 1 and redis.call('hexists', KEYS[i + 1], 'end') == 0 then
    redis.call('hset', KEYS[i + 1], 'beat', now)
    redis.call('pexpire', KEYS[i], ARGV[1])
    redis.call('pexpire', KEYS[i + 1], ARGV[1])
  end
end
return 0
"""

#: KEYS: log, meta. ARGV: lapse ms, ttl ms, the ``error`` entry, the ``end`` entry.
#: A running stream whose producer stopped beating gets its end written here, once.
#: Returns -1 (gone), 0 (alive or ended), 1 (this call ended it).
_REAP = """
if redis.call('exists', KEYS[2]) == 0 then return -1 end
if redis.call('hexists', KEYS[2], 'end') == 1 then return 0 end
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beat = tonumber(redis.call('hget', KEYS[2], 'beat') or '0')
if now - beat < tonumber(ARGV[1]) then return 0 end
local last = tonumber(redis.call('hget', KEYS[2], 'last') or '0')
redis.call('xadd', KEYS[1], '0-' .. (last + 1), 'd', ARGV[3])
redis.call('xadd', KEYS[1], '0-' .. (last + 2), 'd', ARGV[4], 'end', '1')
redis.call('hset', KEYS[2], 'last', last + 2, 'end', last + 2)
redis.call('pexpire', KEYS[1], ARGV[2])
redis.call('pexpire', KEYS[2], ARGV[2])
return 1
"""


#: The entry a lost producer's stream ends with (before the end).
_INTERRUPTED = pack("error", StreamInterrupted().to_dict())


def _pop_query(url: str, name: str) -> tuple[str, str | None]:
    """``url`` without the query parameter ``name`` (which redis-py would reject), and its value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in query if k == name), None)
    rest = urlencode([(k, v) for k, v in query if k != name])
    return urlunsplit(parts._replace(query=rest)), value


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _seq(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.partition("-")[2])


class _Mirror(StreamLog):
    """A followed stream's recent entries in this process, fed by the reading loop."""

    __slots__ = ("broken", "gone", "refs", "started")

    def __init__(self) -> None:
        super().__init__()
        self.refs = 0
        #: The loop reads it only once a reader set its start (``offset``).
        self.started = False
        self.gone = False
        self.broken = False

    def wake(self) -> None:
        self.append([])


class _Hub:
    """This process's one reading loop over every stream its readers follow."""

    def __init__(self, store: RedisStore, url: str, options: RedisOptions) -> None:
        self.store = store
        #: Longest XREAD BLOCK; also how often the loop looks at heartbeats.
        self.block = min(1.0, store.heartbeat)
        self.mirrors: dict[str, _Mirror] = {}
        #: Since when the loop fails to read (``None``: it reads).
        self.failing_since: float | None = None
        # Two connections of its own: XREAD, and the heartbeat checks; so a burst that
        # fills the store's pool (producers retrying in an outage) never starves readers.
        self._client = connect(url, options, extra_timeout=self.block, max_connections=2)
        self._pool = self._client.connection_pool
        self._conn: Any = None
        self._client_id: int | None = None
        self._blocked = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._reap_args: dict[str, list[Any]] = {}

    # -- readers' side --------------------------------------------------------------

    def follow(self, stream_id: str) -> None:
        with self._lock:
            mirror = self.mirrors.get(stream_id)
            if mirror is None:
                mirror = self.mirrors[stream_id] = _Mirror()
            mirror.refs += 1

    def unfollow(self, stream_id: str) -> None:
        with self._lock:
            mirror = self.mirrors.get(stream_id)
            if mirror is not None:
                mirror.refs -= 1
                if mirror.refs <= 0:
                    del self.mirrors[stream_id]

    def begin(self, mirror: _Mirror, after: int) -> None:
        """Start reading ``mirror``'s stream after ``after``, at once."""
        mirror.offset = after
        mirror.started = True
        self._ensure_running()
        self._kick()

    def _kick(self) -> None:
        """Make the loop include a new stream now rather than after its current block."""
        self._wake.set()
        client_id = self._client_id
        if client_id is None or not self._blocked:
            return
        with contextlib.suppress(*redis_errors()):
            for _ in range(3):
                if self.store._redis.client_unblock(client_id) or not self._blocked:
                    return
                time.sleep(0.005)  # the loop's XREAD has not reached Redis yet

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ai-sse-redis-reader", daemon=True
                )
                self._thread.start()

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        closed = self.store._closed
        while not closed.is_set():
            try:
                self._cycle()
            except Exception as exc:
                if closed.is_set():
                    break
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                unexpected = not isinstance(exc, redis_errors())
                logger.warning(
                    "Redis reading loop: %s: %s; retrying",
                    type(exc).__name__,
                    exc,
                    exc_info=unexpected,
                )
                self._drop_connection()
                closed.wait(0.25)
        self._drop_connection()

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._pool.get_connection()
            try:
                conn.send_command("CLIENT", "ID")
                self._client_id = int(conn.read_response())
            except BaseException:
                self._pool.release(conn)
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn, self._client_id = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.disconnect()
            with contextlib.suppress(Exception):
                self._pool.release(conn)

    def _cycle(self) -> None:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.store.heartbeat
            self._check()
        followed = [
            (sid, m)
            for sid, m in list(self.mirrors.items())
            if m.started and not (m.finished or m.gone or m.broken)
        ]
        if not followed:
            self.failing_since = None
            self._wake.wait(self.block)
            self._wake.clear()
            return
        self._wake.clear()
        by_key = {self.store._keys(sid)[0].encode(): m for sid, m in followed}
        ids = [f"0-{m.last_seq}" for _, m in followed]
        conn = self._connection()
        self._blocked = True
        try:
            conn.send_command("XREAD", "BLOCK", _ms(self.block), "STREAMS", *by_key, *ids)
            reply = conn.read_response()
        finally:
            self._blocked = False
        self.failing_since = None
        for key, entries in reply or ():  # RESP2: [[key, [[id, [field, value, ...]], ...]], ...]
            mirror = by_key.get(key)
            if mirror is not None:
                self._feed(mirror, entries)

    def _feed(self, mirror: _Mirror, entries: list[Any]) -> None:
        new: list[bytes] = []
        final = False
        last = mirror.last_seq
        for entry_id, fields in entries:
            seq = _seq(entry_id)
            if seq <= last:
                continue
            if seq != last + 1:  # trimmed before this loop read it
                mirror.broken = True
                break
            last = seq
            data = dict(zip(fields[::2], fields[1::2], strict=True))
            new.append(data[b"d"])
            final = final or b"end" in data
        mirror.append(new, final=final, cap=self.store.max_events)
        if mirror.broken:
            mirror.wake()

    def _check(self) -> None:
        """Every ``heartbeat``: end streams whose producer stopped beating; spot gone ones."""
        running = [
            sid for sid, m in list(self.mirrors.items()) if m.started and not (m.finished or m.gone)
        ]
        if not running:
            return
        store = self.store
        pipe = self._client.pipeline(transaction=False)
        for stream_id in running:
            store._reap(keys=store._keys(stream_id), args=store._reap_args(stream_id), client=pipe)
        results = pipe.execute()
        for stream_id, result in zip(running, results, strict=True):
            mirror = self.mirrors.get(stream_id)
            if mirror is None:
                continue
            if result == -1:
                mirror.gone = True
                mirror.wake()
            elif result == 1:
                logger.warning("stream %s lost its producer: ended as interrupted", stream_id)
                store._interrupted(stream_id)


class RedisStore(StreamStore):
    """Stream logs in Redis, for several workers or hosts (``AI_SSE_STORE = "redis://..."``).

    ``url`` is a redis-py URL; its query may set redis-py connection options
    (``socket_timeout``, ...) and ``prefix``, the key prefix. ``options`` size the
    pools and their timeouts. ``heartbeat`` is how often a producer's process beats;
    a stream whose producer missed ``lapse`` seconds of beats is ended as
    ``interrupted``. Connections are made lazily: creating a store contacts nobody.
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
        options: RedisOptions | None = None,
        heartbeat: float = 2.0,
        lapse: float | None = None,
        retry_interval: float = 0.5,
    ) -> None:
        url, url_prefix = _pop_query(url, "prefix")
        self.prefix = url_prefix if url_prefix is not None else prefix
        self.ttl = ttl
        self.max_events = max_events
        self.lease = lease
        #: A running stream's keys outlive three missed beats.
        self.heartbeat = min(heartbeat, lease / 3)
        self.lapse = lapse if lapse is not None else 5 * heartbeat
        self.retry_interval = retry_interval
        options = options or RedisOptions()
        self._redis: Any = connect(url, options)
        self._create = self._redis.register_script(_CREATE)
        self._append = self._redis.register_script(_APPEND)
        self._listeners = self._redis.register_script(_LISTENERS)
        self._signal = self._redis.register_script(_SIGNAL)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._reap = self._redis.register_script(_REAP)
        self._channel = f"{self.prefix}signals"
        #: Last sequence number Redis confirmed, per stream this process produces.
        self._written: dict[str, int] = {}
        #: Entries handed to ``append`` but not confirmed yet (Redis failed), in order.
        self._unwritten: dict[str, list[bytes]] = {}
        self._retry_at: dict[str, float] = {}
        self._handlers: dict[str, SignalHandler] = {}
        self._listener: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._hub = _Hub(self, url, options)
        self.on_interrupted: list[Callable[[str], object]] = []

    def _keys(self, stream_id: str) -> tuple[str, str]:
        base = f"{self.prefix}{{{stream_id}}}"
        return f"{base}:log", f"{base}:meta"

    def check(self) -> None:
        with translated("check"):
            self._redis.ping()

    # -- the log ------------------------------------------------------------------

    def create(self, stream_id: str, meta: dict[str, Any]) -> None:
        with translated("create"):
            self._create(
                keys=self._keys(stream_id),
                args=[json.dumps(meta, default=str), _ms(self.lease)],
            )
        self._written[stream_id] = 0

    def append(self, stream_id: str, entries: list[bytes], *, final: bool = False) -> int:
        queued = self._unwritten.get(stream_id)
        if queued is not None:
            queued.extend(entries)
            if time.monotonic() < self._retry_at.get(stream_id, 0.0):
                raise StoreError("Redis is failing; the entries wait in this process.")
            entries = queued
        first = self._written[stream_id] + 1
        args: list[Any] = [first, self.max_events, _ms(self.ttl if final else self.lease)]
        try:
            with translated("append"):
                last = int(
                    self._append(keys=self._keys(stream_id), args=[*args, int(final), *entries])
                )
        except StoreError:
            self._unwritten[stream_id] = entries
            self._retry_at[stream_id] = time.monotonic() + self.retry_interval
            raise
        self._unwritten.pop(stream_id, None)
        self._retry_at.pop(stream_id, None)
        if last < 0:
            self._written.pop(stream_id, None)
            raise StreamLost(
                "The stream expired in the store before it ended."
                if last == -1
                else "The stream was ended elsewhere (its producer was taken for lost)."
            )
        if final:
            self._written.pop(stream_id, None)
        else:
            self._written[stream_id] = last
        return last

    def unwritten(self, stream_id: str) -> int:
        return len(self._unwritten.get(stream_id, ()))

    def read(self, stream_id: str, after: int, timeout: float) -> ReadResult | None:
        mirror = self._hub.mirrors.get(stream_id)
        if mirror is not None and mirror.started and after >= mirror.offset:
            return self._read_mirror(mirror, after, timeout)
        result = self._read_log(stream_id, after)
        if result is None or result[0] or result[1] or timeout <= 0:
            return result
        if mirror is not None:
            if not mirror.started:
                self._hub.begin(mirror, after)
            return self._read_mirror(mirror, after, timeout)
        self._hub.follow(stream_id)  # a reader that did not attach() follows for this call
        try:
            mirror = self._hub.mirrors[stream_id]
            if not mirror.started:
                self._hub.begin(mirror, after)
            return self._read_mirror(mirror, after, timeout)
        finally:
            self._hub.unfollow(stream_id)

    def _read_mirror(self, mirror: _Mirror, after: int, timeout: float) -> ReadResult | None:
        entries, finished = mirror.read(after, timeout)
        if entries or finished:
            return entries, finished
        if mirror.gone:
            return None
        if mirror.broken:
            raise StreamGapError()
        if self._hub.failing_since is not None:
            raise StoreError("Redis is failing; the reading loop retries.")
        return entries, finished

    def _read_log(self, stream_id: str, after: int) -> ReadResult | None:
        """Everything after ``after`` now, with the stream's state: one round trip."""
        log, meta_key = self._keys(stream_id)
        with translated("read"):
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

    def meta(self, stream_id: str) -> dict[str, Any] | None:
        with translated("meta"):
            raw = self._redis.hget(self._keys(stream_id)[1], "meta")
        return None if raw is None else dict(json.loads(raw))

    # -- readers ------------------------------------------------------------------

    def attach(self, stream_id: str) -> int:
        count = self._count(stream_id, 1)
        self._hub.follow(stream_id)
        return count

    def detach(self, stream_id: str) -> int:
        self._hub.unfollow(stream_id)
        return self._count(stream_id, -1)

    def _count(self, stream_id: str, delta: int) -> int:
        with translated("listeners"):
            return int(self._listeners(keys=[self._keys(stream_id)[1]], args=[delta]))

    def listeners(self, stream_id: str) -> int:
        with translated("listeners"):
            return int(self._redis.hget(self._keys(stream_id)[1], "listeners") or 0)

    # -- lost producers -------------------------------------------------------------

    def _reap_args(self, stream_id: str) -> list[Any]:
        """ARGV of the reap script: the ``interrupted`` error and the end, as log entries."""
        return [_ms(self.lapse), _ms(self.ttl), _INTERRUPTED, END]

    def _interrupted(self, stream_id: str) -> None:
        """This process ended ``stream_id`` for its lost producer: tell the hooks, aside."""
        for hook in list(self.on_interrupted):
            spawn(_guarded(hook, stream_id), name="ai-sse-interrupted")

    def producer_alive(self, stream_id: str) -> bool | None:
        """Whether ``stream_id``'s producer still beats: ``None`` when the stream is
        unknown, ``False`` when it ended or its beat lapsed (checked on Redis's clock)."""
        with translated("beat"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hmget(self._keys(stream_id)[1], ["beat", "end"])
            pipe.time()
            (beat, end), (secs, micros) = pipe.execute()
        if beat is None:
            return None
        now = int(secs) * 1000 + int(micros) // 1000
        return end is None and now - int(beat) < _ms(self.lapse)

    # -- signals --------------------------------------------------------------------

    def watch(self, stream_id: str, handler: SignalHandler) -> None:
        self._handlers[stream_id] = handler
        self._ensure_listener()

    def unwatch(self, stream_id: str) -> None:
        self._handlers.pop(stream_id, None)
        self._written.pop(stream_id, None)
        self._unwritten.pop(stream_id, None)
        self._retry_at.pop(stream_id, None)

    def signal(self, stream_id: str, name: str) -> bool:
        with translated("signal"):
            sent = self._signal(
                keys=[self._keys(stream_id)[1]], args=[self._channel, name, stream_id]
            )
        return bool(sent)

    def _ensure_listener(self) -> None:
        """Start this process's one listener, or a new one if it died."""
        with self._lock:
            if self._listener is not None and self._listener.is_alive():
                return
            with translated("subscribe"):
                pubsub = self._subscribe()
            self._listener = threading.Thread(
                target=self._listen, args=(pubsub,), name="ai-sse-redis-signals", daemon=True
            )
            self._listener.start()

    def _subscribe(self) -> PubSub:
        """A subscribed PubSub; waits for Redis to confirm, so no later signal is missed."""
        pubsub: PubSub = self._redis.pubsub()
        try:
            pubsub.subscribe(self._channel)
            deadline = (
                time.monotonic() + self._redis.connection_pool.connection_kwargs["socket_timeout"]
            )
            while (remaining := deadline - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=remaining)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
            raise redis.TimeoutError("Redis did not confirm the subscription.")
        except BaseException:
            pubsub.close()
            raise

    def _listen(self, pubsub: PubSub | None) -> None:
        """Dispatch signals to this process's producers and beat for their streams.

        The beat runs first and on its own clock, so a failing subscription never
        delays it; it is what tells other workers this process is alive.
        """
        next_beat = 0.0
        while not self._closed.is_set():
            try:
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat
                    self._keep_alive()
                if pubsub is None:
                    pubsub = self._subscribe()
                    self._recover()
                # The timeout is also how soon close() is noticed.
                message = pubsub.get_message(timeout=min(0.25, self.heartbeat))
                if message is not None and message["type"] == "message":
                    name, _, stream_id = message["data"].decode().partition(" ")
                    self._dispatch(stream_id, name)
                elif message is not None and message["type"] == "subscribe":
                    self._recover()  # redis-py reconnected by itself: catch up
            except Exception as exc:  # Redis failed (or a bug): start over rather than die
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                    pubsub = None
                if not self._closed.is_set():
                    unexpected = not isinstance(exc, redis_errors())
                    logger.warning(
                        "Redis signal listener: %s: %s; reconnecting",
                        type(exc).__name__,
                        exc,
                        exc_info=unexpected,
                    )
                    self._closed.wait(min(1.0, self.heartbeat / 2))
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
        """Stop the listener and the reading loop, and release every connection."""
        self._closed.set()
        for thread in (self._listener, self._hub._thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        self._redis.connection_pool.disconnect()
        self._hub._pool.disconnect()


def _guarded(hook: Callable[[str], object], stream_id: str) -> Callable[[], None]:
    def run() -> None:
        try:
            hook(stream_id)
        except Exception:
            logger.exception("on_interrupted hook failed for stream %s", stream_id)

    return run
