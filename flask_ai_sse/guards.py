"""The blueprint's guards, per app: rate limit, concurrency cap and CORS.

::

    request ─► app's own decorators (login) ─► rate limit ─► slot ─► view ─► generation
                  (create_blueprint(decorators=...))   429       429          │
                                                                              │ ends: done, error,
    slot freed ◄──────────────── Observer.finished ◄──────────────────────────┘ cancel, disconnect

The rate limit is Flask-Limiter's: the app's own ``Limiter`` (``AISSE(limiter=...)``,
so its storage and key function apply) or one made from ``AI_SSE_RATE_LIMIT_*``.
A reconnect that names a stream in ``Last-Event-ID`` passes both guards: it can
only attach to a running stream (or get a 404), never start a generation.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, has_request_context, request
from werkzeug.exceptions import HTTPException

from . import constants as C
from .context import requested_event_id
from .cors import CorsPolicy
from .errors import AISSEError, ConfigurationError, StoreError, TooManyRequests, TooManyStreams
from .redis_client import limiter_storage_options, options_from_config
from .slots import Slot, Slots, create_slots

# Flask-Limiter (and ``limits``) load only when a limit is configured: about 0.1 s.
if TYPE_CHECKING:
    from flask_limiter import Limiter

    from .engine import Generation
    from .extension import AISSE, AppState

__all__ = ["Guards", "RateLimit", "SlotKeeper", "client_key", "guard_view", "install_cors"]

logger = logging.getLogger("flask_ai_sse")

View = Callable[..., Any]
_KEY = "flask_ai_sse.client_key"
_SLOT = "flask_ai_sse.slot"
#: Flask-Limiter's scope for the routes' shared budget: one count for stream and ask.
SCOPE = "ai_sse"


def client_key(ai: AISSE) -> str:
    """Who a request counts against: the owner from ``@ai.authorize``, else the client address.

    Computed once per request (the authorize hook may be a database lookup).
    Behind a proxy, apply werkzeug's ``ProxyFix`` so the address is the client's.
    """
    environ = request.environ
    key = environ.get(_KEY)
    if key is None:
        owner = ai.current_owner()
        key = f"owner:{owner}" if owner is not None else f"addr:{request.remote_addr or '-'}"
        environ[_KEY] = key
    return str(key)


class RateLimit:
    """``AI_SSE_RATE_LIMIT`` checked through a Flask-Limiter ``Limiter``.

    The limit decorates a function that is not a view (Flask-Limiter supports
    that) so the check runs inside the blueprint's views, after the app's own
    decorators, whichever app's request it is.
    """

    def __init__(self, limiter: Limiter, rate: str, *, name: str) -> None:
        from flask_limiter import RateLimitExceeded
        from limits import parse_many

        self._exceeded = RateLimitExceeded
        try:
            parse_many(rate)
        except ValueError as exc:  # Flask-Limiter would only log it and not limit at all
            raise ConfigurationError(f"AI_SSE_RATE_LIMIT is not a rate limit: {rate!r}.") from exc
        self.limiter = limiter
        self.rate = rate

        def spend() -> None:
            """Nothing: calling it is what Flask-Limiter counts."""

        # Flask-Limiter files decorated limits under the function's qualified name:
        # one name per app, so that one Limiter serving two apps keeps their limits apart.
        spend.__name__ = spend.__qualname__ = name
        self._spend = limiter.shared_limit(rate, scope=SCOPE)(spend)

    def check(self) -> None:
        """Count this request; a 429 with ``Retry-After`` when over the limit."""
        try:
            self._spend()
        except self._exceeded as exc:
            raise TooManyRequests(
                f"Rate limit exceeded ({self.rate}).", retry_after=self._retry_after(exc)
            ) from exc
        except (HTTPException, AISSEError):
            raise  # e.g. abort(401) from the authorize hook, called by the key function
        except Exception as exc:
            if _is_storage_error(exc):
                raise StoreError("The rate limit storage is unavailable.") from exc
            raise

    def _retry_after(self, exc: Any) -> float:
        try:
            current = self.limiter.current_limit
            if current is not None:
                return max(1.0, current.reset_at - time.time())
        except Exception:  # the storage failing here must not hide the 429
            logger.debug("could not read the rate limit window", exc_info=True)
        return float(exc.limit.limit.get_expiry())


def _is_storage_error(exc: BaseException) -> bool:
    from limits.errors import StorageError

    if isinstance(exc, StorageError | ConnectionError | TimeoutError):
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - depends on the install
        return False
    return isinstance(exc, redis.RedisError)


def _internal_limiter(ai: AISSE, app: Flask, config: Mapping[str, Any]) -> Limiter:
    """A Limiter for the routes alone: it must not limit the app's other routes.

    Flask-Limiter reads ``RATELIMIT_*`` keys meant for the app's own limiter;
    this one passes its settings explicitly, exempts itself from default and
    application limits, and leaves no ``RATELIMIT_ENABLED`` key behind.
    """
    from flask_limiter import Limiter

    had_enabled = "RATELIMIT_ENABLED" in app.config
    limiter = Limiter(
        functools.partial(client_key, ai),
        storage_uri=str(config[C.RATE_LIMIT_STORAGE]),
        storage_options=limiter_storage_options(
            str(config[C.RATE_LIMIT_STORAGE]), options_from_config(config)
        ),
        strategy=str(config[C.RATE_LIMIT_STRATEGY]),
        key_prefix=SCOPE,
        headers_enabled=False,
        swallow_errors=False,
        default_limits_exempt_when=_always,
        application_limits_exempt_when=_always,
    )
    try:
        limiter.init_app(app)
    except Exception as exc:  # bad storage URI or strategy
        raise ConfigurationError(f"The internal rate limiter cannot start: {exc}") from exc
    finally:
        if not had_enabled:
            app.config.pop("RATELIMIT_ENABLED", None)
    return limiter


def _always() -> bool:
    return True


class SlotKeeper:
    """An engine observer: a generation started by a guarded view takes over its slot.

    ``started`` runs in the request that starts the generation, so it finds the
    slot the guard took; ``finished`` runs when the generation has ended,
    however it ended, and frees the slot.
    """

    def __init__(self) -> None:
        self._held: dict[str, Slot] = {}

    def started(self, generation: Generation) -> None:
        if has_request_context():
            slot: Slot | None = request.environ.pop(_SLOT, None)
            if slot is not None:
                slot.claimed = True
                self._held[generation.stream_id] = slot

    def chunk(self, generation: Generation, chunk: Any) -> None:
        """Nothing per chunk."""

    def finished(self, generation: Generation) -> None:
        slot = self._held.pop(generation.stream_id, None)
        if slot is not None:
            slot.release()


class Guards:
    """What guards one app's routes; all off by default."""

    def __init__(
        self,
        *,
        rate_limit: RateLimit | None = None,
        slots: Slots | None = None,
        cors: CorsPolicy | None = None,
    ) -> None:
        self.rate_limit = rate_limit
        self.slots = slots
        self.cors = cors

    @classmethod
    def setup(cls, ai: AISSE, app: Flask, state: AppState) -> Guards:
        """Read the config's keys; hook the slot keeper into the engine's observers."""
        config = state.config
        rate_limit = None
        if config[C.RATE_LIMIT]:
            limiter = ai.limiter
            if limiter is None:
                limiter = _internal_limiter(ai, app, config)
            elif limiter not in app.extensions.get("limiter", ()):
                limiter.init_app(app)  # the app's own limiter, not yet registered here
            rate_limit = RateLimit(
                limiter,
                str(config[C.RATE_LIMIT]),
                name=f"ai_sse_rate_limit_{re.sub(r'[^A-Za-z0-9_]', '_', app.name)}_{id(app):x}",
            )
        slots = None
        if config[C.MAX_STREAMS_PER_KEY]:
            slots = create_slots(
                _slots_url(config),
                config[C.MAX_STREAMS_PER_KEY],
                lease=_lease(config),
                options=options_from_config(config),
            )
            state.observers.append(SlotKeeper())
        cors = CorsPolicy.from_config(
            config[C.CORS_ORIGINS],
            methods=config[C.CORS_METHODS],
            headers=config[C.CORS_HEADERS],
            expose_headers=config[C.CORS_EXPOSE_HEADERS],
            credentials=config[C.CORS_CREDENTIALS],
            max_age=config[C.CORS_MAX_AGE],
        )
        return cls(rate_limit=rate_limit, slots=slots, cors=cors)


def _slots_url(config: Mapping[str, Any]) -> str:
    """``AI_SSE_MAX_STREAMS_STORAGE``, else the stream store's Redis, else memory."""
    url = config[C.MAX_STREAMS_STORAGE]
    if url:
        return str(url)
    store = config[C.STORE]
    if isinstance(store, str) and store.startswith(("redis://", "rediss://", "unix://")):
        return store
    return "memory"


def _lease(config: Mapping[str, Any]) -> float:
    """How long a Redis slot outlives a worker that died holding it."""
    longest = float(config[C.STREAM_TIMEOUT] or 0) or 3600.0
    return longest + float(config[C.DISCONNECT_GRACE] or 0) + 60.0


def _resumes() -> bool:
    """The request names a stream to resume: it attaches (or 404s), it starts nothing."""
    return requested_event_id() is not None


def guard_view(ai: AISSE, view: View, *, resumable: bool = False) -> View:
    """Wrap a route that spends money: rate limit, then a concurrency slot, then ``view``."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        guards = ai.state().guards
        if resumable and _resumes():
            return view(*args, **kwargs)
        if guards.rate_limit is not None:
            guards.rate_limit.check()
        if guards.slots is None:
            return view(*args, **kwargs)
        slot = guards.slots.take(client_key(ai))
        if slot is None:
            raise TooManyStreams(
                f"At most {guards.slots.limit} streams may be open at once; wait for one to end.",
                retry_after=5,
            )
        request.environ[_SLOT] = slot
        try:
            response = view(*args, **kwargs)
        except BaseException:
            slot.release()
            raise
        finally:
            request.environ.pop(_SLOT, None)
        if not slot.claimed:  # no generation started (ask, or resumed): the work is done
            slot.release()
        return response

    return guarded


def install_cors(ai: AISSE, bp: Blueprint) -> None:
    """Put the app's CORS headers on every answer of ``bp``: errors and preflights too."""

    @bp.after_request
    def cors_headers(response: Response) -> Response:
        policy = ai.state().guards.cors
        if policy is not None:
            headers, vary = policy.headers_for(request.method, request.headers.get)
            response.headers.update(headers)
            response.vary.update(vary)
        return response
