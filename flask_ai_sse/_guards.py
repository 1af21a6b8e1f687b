"""The blueprint's guards, per app: rate limit, concurrency cap and CORS.

::

    request ─► app's own decorators (login) ─► rate limit ─► slot ─► view ─► generation
                  (create_blueprint(decorators=...))   429       429          │
                                                                              │ ends: done, error,
    slot freed ◄──────────────── Slot.finished (an observer) ◄────────────────┘ cancel, disconnect

The rate limit is Flask-Limiter's: the app's own ``Limiter`` (``AISSE(limiter=...)``,
so its storage and key function apply) or one made from ``AI_SSE_RATE_LIMIT_*``.
A reconnect that names a stream in ``Last-Event-ID`` passes both guards: it can
only attach to a running stream (or get a 404), never start a generation.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from ._budgets import Budgets
from ._cors import CorsPolicy
from ._redis_client import is_redis_failure, limiter_storage_options
from ._request import requested_event_id
from ._settings import GuardSettings
from ._slots import Slots, create_slots
from .errors import AISSEError, ConfigurationError, StoreError, TooManyRequests, TooManyStreams

# Flask-Limiter (and ``limits``) load only when a limit is configured: about 0.1 s.
if TYPE_CHECKING:
    from flask_limiter import Limiter

logger = logging.getLogger("flask_ai_sse")

View = Callable[..., Any]
#: Flask-Limiter's scope for the routes' shared budget: one count for stream and ask.
SCOPE = "ai_sse"


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
            from limits.errors import StorageError

            if isinstance(exc, StorageError) or is_redis_failure(exc):
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


def _internal_limiter(
    app: Flask, settings: GuardSettings, client_key: Callable[[], str]
) -> Limiter:
    """A Limiter for the routes alone: it must not limit the app's other routes.

    Flask-Limiter reads ``RATELIMIT_*`` keys meant for the app's own limiter;
    this one passes its settings explicitly, exempts itself from default and
    application limits, and leaves no ``RATELIMIT_ENABLED`` key behind.
    """
    from flask_limiter import Limiter

    had_enabled = "RATELIMIT_ENABLED" in app.config
    limiter = Limiter(
        client_key,
        storage_uri=settings.rate_limit_storage,
        storage_options=limiter_storage_options(settings.rate_limit_storage, settings.redis),
        strategy=settings.rate_limit_strategy,
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


class Guards:
    """What guards one app's routes; all off by default.

    ``client_key`` says who the current request counts against (the owner from
    ``@ai.authorize``, else the client address).
    """

    def __init__(
        self,
        client_key: Callable[[], str],
        *,
        rate_limit: RateLimit | None = None,
        slots: Slots | None = None,
        cors: CorsPolicy | None = None,
    ) -> None:
        self.client_key = client_key
        self.rate_limit = rate_limit
        self.slots = slots
        self.cors = cors
        #: ``AI_SSE_TOKEN_BUDGET`` (set up with the app's telemetry), checked after the rate limit.
        self.budgets: Budgets | None = None

    @classmethod
    def setup(
        cls,
        app: Flask,
        settings: GuardSettings,
        cors: CorsPolicy | None,
        *,
        client_key: Callable[[], str],
        limiter: Limiter | None = None,
    ) -> Guards:
        """The guards ``settings`` ask for; ``limiter`` is the app's own Flask-Limiter."""
        rate_limit = None
        if settings.rate_limit:
            if limiter is None:
                limiter = _internal_limiter(app, settings, client_key)
            elif limiter not in app.extensions.get("limiter", ()):
                limiter.init_app(app)  # the app's own limiter, not yet registered here
            rate_limit = RateLimit(
                limiter,
                settings.rate_limit,
                name=f"ai_sse_rate_limit_{re.sub(r'[^A-Za-z0-9_]', '_', app.name)}_{id(app):x}",
            )
        slots = None
        if settings.max_streams_per_key:
            slots = create_slots(
                settings.slots_url,
                settings.max_streams_per_key,
                lease=settings.slot_lease,
                options=settings.redis,
            )
        return cls(client_key, rate_limit=rate_limit, slots=slots, cors=cors)

    def admit(self, view: View, *args: Any, resumable: bool = False, **kwargs: Any) -> Any:
        """Run a view that spends money: rate limit, then a concurrency slot, then ``view``.

        ``view`` gets ``observers``: the slot, for the code that starts the
        generation to hand to the engine (which releases it when the generation
        ends). A view that started none (an ask, a resume) gives it back here.
        """
        if resumable and requested_event_id() is not None:
            # A reconnect attaches to a running stream (or 404s): it starts nothing.
            return view(*args, observers=(), **kwargs)
        if self.rate_limit is not None:
            self.rate_limit.check()
        if self.budgets is not None:  # refused before; a running stream is metered
            self.budgets.check(self.client_key())
        if self.slots is None:
            return view(*args, observers=(), **kwargs)
        slot = self.slots.take(self.client_key())
        if slot is None:
            raise TooManyStreams(
                f"At most {self.slots.limit} streams may be open at once; wait for one to end.",
                retry_after=5,
            )
        try:
            response = view(*args, observers=(slot,), **kwargs)
        except BaseException:
            slot.release()
            raise
        if not slot.claimed:
            slot.release()
        return response


def install_cors(bp: Blueprint, guards: Callable[[], Guards]) -> None:
    """Put the app's CORS headers on every answer of ``bp``: errors and preflights too."""

    @bp.after_request
    def cors_headers(response: Response) -> Response:
        policy = guards().cors
        if policy is not None:
            headers, vary = policy.headers_for(request.method, request.headers.get)
            response.headers.update(headers)
            response.vary.update(vary)
        return response
