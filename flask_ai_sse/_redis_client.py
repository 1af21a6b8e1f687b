"""Redis clients for the stream store and the concurrency slots: built and translated here.

One place decides how the library talks to Redis, so that every pool behaves the
same way under load and under faults:

- a **blocking** pool: beyond ``max_connections`` a command waits up to
  ``pool_timeout`` seconds for a free connection instead of failing at once
  (redis-py's default pool refuses the 101st concurrent command);
- every socket has a timeout (``socket_timeout``, ``connect_timeout``), so a
  stalled Redis fails a call within seconds instead of hanging a greenlet;
- a short retry (one quick retry after a dropped connection) rides out a restart
  without holding a client for long;
- :func:`translated` is the one boundary where ``redis`` errors become
  :class:`~flask_ai_sse.errors.StoreError` (``store_unavailable``, 503).

Nothing connects at construction: the first command does.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConfigurationError, StoreError

__all__ = [
    "RedisOptions",
    "connect",
    "limiter_storage_options",
    "redis_errors",
    "translated",
]

logger = logging.getLogger("flask_ai_sse")

#: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]``: the
#: master of ``service`` as the Sentinels name it, followed across failovers.
SENTINEL = "redis+sentinel://"
#: URL schemes this module accepts.
SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL)


@dataclass(frozen=True)
class RedisOptions:
    """How the library's Redis pools behave (from ``AI_SSE_REDIS_*``)."""

    #: Seconds a command may take before it fails (a stalled Redis).
    socket_timeout: float = 1.0
    connect_timeout: float = 1.0
    #: Connections per pool and process; beyond, commands wait ``pool_timeout``.
    max_connections: int = 50
    pool_timeout: float = 2.0


def _redis() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "A redis:// URL needs the 'redis' package: pip install 'flask-ai-sse[redis]'."
        ) from None
    return redis


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a failing Redis raises: its own errors, and sockets' (a reset mid-read)."""
    return (_redis().RedisError, OSError)


def is_redis_failure(exc: BaseException) -> bool:
    """A Redis (or socket) failure; works whether or not the 'redis' package is installed."""
    redis = sys.modules.get("redis")
    return isinstance(exc, OSError) or (redis is not None and isinstance(exc, redis.RedisError))


@contextlib.contextmanager
def translated(what: str = "") -> Iterator[None]:
    """Turn Redis failures into :class:`StoreError`; the cause is logged once, here."""
    try:
        yield
    except redis_errors() as exc:
        logger.warning("redis%s: %s: %s", f" ({what})" if what else "", type(exc).__name__, exc)
        raise StoreError() from exc


def connect(
    url: str,
    options: RedisOptions,
    *,
    extra_timeout: float = 0.0,
    max_connections: int | None = None,
    **kwargs: Any,
) -> Any:
    """A ``redis.Redis`` on a blocking pool for ``url`` (RESP2).

    ``extra_timeout`` lengthens the socket timeout for a client whose commands
    block on purpose (``XREAD BLOCK``); ``max_connections`` overrides the size
    for a dedicated pool. Extra keyword arguments go to the connections.
    """
    redis = _redis()
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    connection: dict[str, Any] = {
        "socket_timeout": options.socket_timeout + extra_timeout,
        "socket_connect_timeout": options.connect_timeout,
        # One quick retry rides out a dropped connection; a long backoff would hang clients.
        "retry": Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
        "protocol": 2,
        **kwargs,
    }
    size = {"max_connections": max_connections or options.max_connections}
    try:
        if url.startswith(SENTINEL):
            return _sentinel_client(url, options, {**connection, **size})
        pool = redis.BlockingConnectionPool.from_url(
            url, timeout=options.pool_timeout, **size, **connection
        )
    except ValueError as exc:
        raise ConfigurationError(f"Not a usable Redis URL: {exc}") from exc
    if str(pool.connection_kwargs.get("protocol")) != "2":
        raise ConfigurationError("The library speaks RESP2 to Redis: drop 'protocol' from the URL.")
    return redis.Redis(connection_pool=pool)


def _sentinel_client(url: str, options: RedisOptions, connection: dict[str, Any]) -> Any:
    """A client of the master the Sentinels in ``url`` name, on a blocking pool."""
    from redis import BlockingConnectionPool
    from redis.sentinel import Sentinel, SentinelConnectionPool

    class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
        """Sentinel's master lookup with the blocking pool's wait for a free connection."""

    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or item, int(port) if host else 26379))
    path = [p for p in parts.path.split("/") if p]
    if not path or not hostlist:
        raise ValueError(f"{url!r} names no Sentinel or no service: {SENTINEL}host:port/service")
    timeouts = {
        "socket_timeout": options.socket_timeout,
        "socket_connect_timeout": options.connect_timeout,
    }
    sentinel = Sentinel(hosts, sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    return sentinel.master_for(  # type: ignore[no-untyped-call]
        path[0],
        connection_pool_class=BlockingSentinelPool,
        timeout=options.pool_timeout,
        db=int(path[1]) if len(path) > 1 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        **connection,
    )


def limiter_storage_options(uri: str, options: RedisOptions) -> dict[str, Any]:
    """Flask-Limiter's ``storage_options`` for ``uri``: a Redis storage gets a blocking pool
    like the store's (its default pool refuses the 101st concurrent request)."""
    if not uri.startswith(SCHEMES) or uri.startswith(SENTINEL):
        return {}  # limits reaches Sentinels itself
    return {"connection_pool": connect(uri, options).connection_pool}
