"""Concurrency slots: at most N generations at once per client key. No Flask here.

A slot is taken before the upstream request opens and given back when the
generation ends, however it ends (done, error, cancel, disconnect, timeout):
the slot is an engine observer (``Observer.finished`` releases it) for that,
not the reader's close, because a generation outlives its readers during the
disconnect grace.

``memory`` counts in this process. With Redis every worker and host shares the
count: a sorted set per key whose members are slot tokens scored by a lease
deadline, so a slot held by a worker that died frees itself when its lease
(the longest a generation may run, plus a margin) runs out.
"""

from __future__ import annotations

import abc
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError, StoreError

__all__ = ["MemorySlots", "RedisSlots", "Slot", "Slots", "create_slots"]

logger = logging.getLogger("flask_ai_sse")


class Slots(abc.ABC):
    """Counts open generations per key, up to ``limit``."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"AI_SSE_MAX_STREAMS_PER_KEY must be >= 1, not {limit!r}.")
        self.limit = limit

    def take(self, key: str) -> Slot | None:
        """A slot for ``key``, or ``None`` when ``key`` already holds ``limit`` of them."""
        token = secrets.token_hex(8)
        return Slot(self, key, token) if self._acquire(key, token) else None

    @abc.abstractmethod
    def _acquire(self, key: str, token: str) -> bool: ...

    @abc.abstractmethod
    def _release(self, key: str, token: str) -> None: ...

    @abc.abstractmethod
    def count(self, key: str) -> int:
        """How many slots ``key`` holds now."""


@dataclass(eq=False)
class Slot:
    """One taken slot. :meth:`release` is idempotent and never raises.

    A slot is also an engine observer: handed to the code that starts a
    generation, it is claimed when the generation starts and released when it
    ends, however it ends.
    """

    slots: Slots
    key: str
    token: str
    #: Set when a generation took charge of the slot (it releases it at its end).
    claimed: bool = False
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        try:
            self.slots._release(self.key, self.token)
        except StoreError:
            # The Redis lease frees it later; a failed release must not break a stream's end.
            logger.warning("could not release a stream slot of %r", self.key, exc_info=True)

    # -- engine observer -------------------------------------------------------------

    def started(self, generation: object) -> None:
        self.claimed = True

    def chunk(self, generation: object, chunk: object) -> None:
        """Nothing per chunk."""

    def finished(self, generation: object) -> None:
        self.release()


class MemorySlots(Slots):
    """Slots of this process only: each worker has its own count."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._held: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _acquire(self, key: str, token: str) -> bool:
        with self._lock:
            held = self._held.setdefault(key, set())
            if len(held) >= self.limit:
                return False
            held.add(token)
            return True

    def _release(self, key: str, token: str) -> None:
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held.discard(token)
                if not held:
                    del self._held[key]

    def count(self, key: str) -> int:
        return len(self._held.get(key, ()))


# KEYS[1] the key's set; ARGV: limit, token, lease in ms. Redis's own clock, so hosts
# with skewed clocks agree; expired leases are dropped before counting.
_ACQUIRE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisSlots(Slots):
    """Slots shared by every process using the same Redis (``redis://`` URL)."""

    prefix = "ai_sse:slots:"

    def __init__(self, url: str, limit: int, *, lease: float) -> None:
        super().__init__(limit)
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "A redis:// URL for stream slots needs the 'redis' package:"
                " pip install 'flask-ai-sse[redis]'."
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # Connects lazily, at the first command: nothing opens at start-up.
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        self._acquire_script: Any = self._client.register_script(_ACQUIRE)
        self.lease_ms = max(1000, int(lease * 1000))

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"Redis failed while {what} a stream slot.") from exc

    def _acquire(self, key: str, token: str) -> bool:
        keys = [self.prefix + key]
        args = [self.limit, token, self.lease_ms]
        return bool(self._call("taking", self._acquire_script, keys=keys, args=args))

    def _release(self, key: str, token: str) -> None:
        self._call("releasing", self._client.zrem, self.prefix + key, token)

    def count(self, key: str) -> int:
        return int(self._call("counting", self._client.zcard, self.prefix + key))

    def close(self) -> None:
        """Release the Redis connections."""
        self._client.close()


def create_slots(url: str, limit: int, *, lease: float) -> Slots:
    """The slots ``url`` names: ``memory`` or a ``redis://`` / ``rediss://`` / ``unix://`` URL."""
    if url in ("memory", "memory://"):
        return MemorySlots(limit)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisSlots(url, limit, lease=lease)
    raise ConfigurationError(
        f"AI_SSE_MAX_STREAMS_STORAGE must be 'memory' or a redis:// URL, not {url!r}."
    )
