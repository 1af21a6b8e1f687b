"""The blueprint's guards, per app: what one client may start, hold and send.

::

    request ─► cross-site check ─► app's own decorators (login) ─► connection ─► rate limit
                 403 (a page on         (create_blueprint(decorators=...))   429          429
                 another site)                                                 │
                                              view ◄── slot (429) ◄────────────┘
                                                │
    connection freed ◄── the response body closes (StreamReader.close)
    slot freed ◄──────── Slot.finished (an observer): the generation ended

The rate limit is Flask-Limiter's: the app's own ``Limiter`` (``AISSE(limiter=...)``,
so its storage and key function apply) or one made from ``AI_SSE_RATE_LIMIT_*``.
A reconnect that names its stream in ``Last-Event-ID`` passes the rate limit and
the slot: it can only attach to that stream (or get a 404), never start a
generation; it still holds a connection, which is what
``AI_SSE_MAX_CONNECTIONS_PER_KEY`` counts (streams and attaches together).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from . import constants as C
from ._budgets import Budgets
from ._cors import CorsPolicy
from ._csrf import SAME_ORIGIN, from_trusted_page, may_change_state
from ._redis_client import is_redis_failure, limiter_storage_options
from ._request import requested_event_id
from ._sendwatch import SendWatch
from ._settings import GuardSettings
from ._slots import Slot, Slots, create_slots
from .engine.reader import StreamReader
from .errors import (
    AISSEError,
    ConfigurationError,
    CrossSiteRequest,
    StoreError,
    TooManyConnections,
    TooManyRequests,
    TooManyStreams,
)

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
    """What guards one app's routes (see the module's docs).

    ``client_key`` says who the current request counts against (the owner from
    ``@ai.authorize``, else the client address).
    """

    def __init__(
        self,
        client_key: Callable[[], str],
        *,
        rate_limit: RateLimit | None = None,
        slots: Slots | None = None,
        connections: Slots | None = None,
        cors: CorsPolicy | None = None,
        allow_get_stream: bool | str = True,
        send_watch: SendWatch | None = None,
    ) -> None:
        self.client_key = client_key
        self.rate_limit = rate_limit
        self.slots = slots
        self.connections = connections
        self.cors = cors
        self.allow_get_stream = allow_get_stream
        #: Drops clients that stopped reading (``AI_SSE_SEND_TIMEOUT``); every event
        #: stream of the app gets it, not only the routes'.
        self.send_watch = send_watch
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
        connections = None
        if settings.max_connections_per_key:
            # Counted like generations: in Redis, leases this process renews while it
            # holds them, so a worker that dies frees its clients' places.
            connections = create_slots(
                settings.slots_url,
                settings.max_connections_per_key,
                lease=settings.slot_lease,
                name=C.MAX_CONNECTIONS_PER_KEY,
                prefix="ai_sse:connections:",
                options=settings.redis,
            )
        return cls(
            client_key,
            rate_limit=rate_limit,
            slots=slots,
            connections=connections,
            cors=cors,
            allow_get_stream=settings.allow_get_stream,
            send_watch=SendWatch(settings.send_timeout) if settings.send_timeout > 0 else None,
        )

    # -- before any view: where the request comes from -------------------------------

    def check_cross_site(self) -> None:
        """Refuse a state change that a page on another site could have forged (403).

        See :mod:`flask_ai_sse._csrf` for the rules; safe methods pass.
        """
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if not may_change_state(request.method, request.headers.get, _own_origin(), self.cors):
            raise CrossSiteRequest(
                "This request could come from another site: send it as JSON (or with an"
                " X-Requested-With header), or from a page of an allowed origin."
            )

    def check_event_source(self) -> None:
        """``GET /stream`` as ``AI_SSE_ALLOW_GET_STREAM`` says: on, off (405), or only for
        pages of this origin and of origins the CORS policy lists (403)."""
        allowed = self.allow_get_stream
        if allowed is True:
            return
        if allowed is False:
            raise MethodNotAllowed(
                valid_methods=["POST"], description="GET /stream is turned off: use POST."
            )
        if allowed == SAME_ORIGIN and not from_trusted_page(
            request.headers.get, _own_origin(), self.cors
        ):
            raise CrossSiteRequest(
                "GET /stream is served to pages of this site only: use POST from elsewhere."
            )

    # -- around views ----------------------------------------------------------------

    def admit(
        self,
        view: View,
        *args: Any,
        resumable: bool = False,
        event_source: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run a view that spends money: a connection, the rate limit, then a concurrency
        slot, then ``view``.

        ``view`` gets ``observers``: the slot, for the code that starts the
        generation to hand to the engine (which releases it when the generation
        ends). A view that started none (an ask, a resume) gives it back here. The
        connection is held while the answer is served: an event stream until it
        closes, an ask until it is answered.
        """
        if event_source:
            self.check_event_source()
        return self.connected(lambda: self._spend(view, args, kwargs, resumable))

    def attach(self, view: View, stream_id: str, **kwargs: Any) -> Any:
        """Run the attach view: it holds a connection, and is rate limited unless it
        reconnects (``Last-Event-ID``) to the stream it names."""

        def run() -> Any:
            resumed = requested_event_id()
            if self.rate_limit is not None and (resumed is None or resumed[0] != stream_id):
                self.rate_limit.check()
            return view(stream_id=stream_id, **kwargs)

        return self.connected(run)

    def connected(self, respond: Callable[[], Any]) -> Any:
        """``respond()`` holding one of the key's connections until its body closes."""
        if self.connections is None:
            return respond()
        connection = self.connections.take(self.client_key())
        if connection is None:
            raise TooManyConnections(
                f"At most {self.connections.limit} streams and attaches may be open at once.",
                retry_after=5,
            )
        try:
            response = respond()
        except BaseException:
            connection.release()
            raise
        _release_on_close(response, connection)
        return response

    def _spend(
        self, view: View, args: tuple[Any, ...], kwargs: dict[str, Any], resumable: bool
    ) -> Any:
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


def _own_origin() -> str:
    """``scheme://host[:port]`` of the current request (behind a proxy: ``ProxyFix``)."""
    return f"{request.scheme}://{request.host}"


def _release_on_close(response: Any, connection: Slot) -> None:
    """Free ``connection`` when the server closes the event stream ``response`` serves;
    at once when it serves none (a 404, a JSON answer)."""
    body = getattr(response, "response", None)
    if isinstance(body, StreamReader):
        body.call_on_close(connection.release)
    else:
        connection.release()


def install_cross_site_check(
    bp: Blueprint, guards: Callable[[], Guards], *, exempt: tuple[str, ...] = ()
) -> None:
    """Refuse, before any view or decorator of ``bp``, what another site could forge.

    ``exempt``: endpoints that change nothing (the catch-all that answers 404/405).
    """

    @bp.before_request
    def cross_site() -> None:
        if (request.endpoint or "").rpartition(".")[2] not in exempt:
            guards().check_cross_site()


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
