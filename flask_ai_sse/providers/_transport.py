"""The ``requests`` boundary: one pooled session per provider, retries, timeouts, errors.

Here, and only here, ``requests``/``urllib3``/socket/JSON errors become the
project's exception tree (``raise ... from exc``). :class:`HTTPTransport` posts
with timeouts (connect, read-idle, total) and retries before the first byte,
iterates a body, and :func:`shutdown` ends a response's socket from any greenlet.
The session configures the connection (pool, proxies, TLS); the exchange on it is
``_http1``'s, below requests' per-request machinery.
A post given an :class:`~.base.AbortSignal` can be stopped from another greenlet
while it connects, waits for the status or backs off before a retry.

Nothing is retried once a stream has begun: text may already be on its way.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import http.client
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.proxy import connection_requires_http_tunnel
from urllib3.util.url import parse_url

from .._version import __version__
from ..errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderStatusError,
    ProviderTimeout,
)
from ._http1 import ConnectFailed, UpstreamResponse, exchange
from .base import AbortSignal, ProviderConfig

logger = logging.getLogger("flask_ai_sse.providers")

#: Statuses worth another attempt: rate limits and the provider's own failures.
RETRY_STATUSES = frozenset({408, 409, 429})
#: The first backoff step in seconds; it doubles per attempt up to ``retry_max_wait``.
BACKOFF_BASE = 0.5
#: How much of an error body is read to find its message.
ERROR_BODY_LIMIT = 8192
ERROR_MESSAGE_LIMIT = 200

# Anything shaped like a credential, even masked ("sk-abc***xyz"), in upstream text.
_KEYLIKE = re.compile(
    r"Bearer\s+\S+|\b(?:sk|gsk|xai|pk|rk)[-_][-\w*.]{6,}|\bAIza[-\w*]{10,}|[-\w*]{32,}",
    re.IGNORECASE,
)

# What a broken connection or body looks like at each layer we sit on.
_TRANSPORT_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)
#: The content codings the transport decodes, offered unless the user's headers say otherwise.
ACCEPT_ENCODING = "gzip, deflate"
#: How many distinct URLs' routes (pool, request head) are kept per transport.
ROUTE_CACHE = 64


# -- errors -------------------------------------------------------------------


def _is_timeout(exc: BaseException) -> bool:
    """Whether a transport error was a timeout."""
    if isinstance(exc, ConnectFailed):
        return exc.timed_out
    return isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def upstream_message(body: bytes) -> str:
    """The human part of an error body (``{"error": {"message": ...}}`` in every format)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    if isinstance(data, list) and data:  # Gemini wraps errors in an array outside SSE mode
        data = data[0]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        error = error.get("message") or error.get("type") or ""
    return str(error)


# -- the transport ---------------------------------------------------------------


class HTTPTransport:
    """One provider's pooled session, its timeouts and its retry policy.

    Made by the provider's ``__init__`` (so in ``init_app``, never at import).
    ``sleep`` is the backoff's sleep; tests replace it to record the waits.
    """

    def __init__(
        self,
        config: ProviderConfig,
        *,
        provider: str,
        headers: Mapping[str, str],
        secrets: Iterable[str | None],
        base_url: str,
    ) -> None:
        self.config = config
        self.provider = provider
        self.sleep: Callable[[float], None] = time.sleep
        #: Called before each retry's wait (e.g. to count retries); hooks must be quick.
        self.on_retry: list[Callable[[], None]] = []
        self._secrets = tuple(s for s in secrets if s)
        self.session = requests.Session()
        # pool_block=False: past pool_size, extra connections open and are dropped after use.
        adapter = HTTPAdapter(
            pool_connections=4, pool_maxsize=max(1, config.pool_size), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {"User-Agent": f"flask-ai-sse/{__version__}", "Accept-Encoding": ACCEPT_ENCODING}
        )
        self.session.headers.update(headers)
        # requests reads proxy variables and ~/.netrc anew on every request (a third of
        # a short stream's set-up CPU); this transport talks to one origin, so read the
        # environment once. The keys' own auth headers make netrc moot.
        self.session.proxies = requests.utils.get_environ_proxies(base_url)
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self.session.trust_env = False
        self._routes: dict[str, _Route] = {}

    def __repr__(self) -> str:
        return f"<HTTPTransport {self.provider!r} pool={self.config.pool_size}>"

    def close(self) -> None:
        self._routes.clear()
        self.session.close()

    def scrub(self, text: str) -> str:
        """Upstream text made safe to show: no key, one line, short."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = " ".join(_KEYLIKE.sub("***", text).split())
        if len(text) > ERROR_MESSAGE_LIMIT:
            text = text[: ERROR_MESSAGE_LIMIT - 1] + "…"
        return text or "no details"

    def deadline(self) -> float:
        """The monotonic time at which the total timeout runs out, from now."""
        return time.monotonic() + self.config.total_timeout

    def route(self, url: str) -> _Route:
        """Where a POST to ``url`` goes and its head, worked out by the session once per URL.

        The session's adapter picks the urllib3 pool (proxy, TLS verification and
        pool size included) and the request target (absolute through a forwarding
        proxy); requests checks the URL and the header values. What is left per
        request is the body and its length.
        """
        route = self._routes.get(url)
        if route is not None:
            return route
        session = self.session
        prepared = requests.PreparedRequest()
        prepared.prepare(method="POST", url=url, headers=session.headers, json={})
        adapter = session.get_adapter(url)
        assert isinstance(adapter, HTTPAdapter)
        pool: Any = adapter.get_connection_with_tls_context(
            prepared, session.verify, proxies=session.proxies, cert=session.cert
        )
        adapter.cert_verify(pool, url, session.verify, session.cert)  # type: ignore[no-untyped-call]
        target = adapter.request_url(prepared, session.proxies)
        parsed = parse_url(url)
        tunnel = connection_requires_http_tunnel(pool.proxy, pool.proxy_config, parsed.scheme)
        fields = {"Host": _host_header(parsed.scheme or "http", parsed.host or "", parsed.port)}
        for name, value in session.headers.items():
            if value is not None:
                fields[name] = value if isinstance(value, str) else value.decode("latin-1")
        if not tunnel:
            fields.update(pool.proxy_headers)
        fields["Content-Type"] = "application/json"
        head = f"POST {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        route = _Route(pool, head.encode("latin-1") + b"Content-Length: ", tunnel)
        if len(self._routes) >= ROUTE_CACHE:
            self._routes.clear()
        self._routes[url] = route
        return route

    def post(
        self,
        url: str,
        body: Mapping[str, Any],
        *,
        deadline: float,
        abort: AbortSignal | None = None,
    ) -> UpstreamResponse:
        """POST and return once the status is known and good, retrying before the first byte.

        Connection errors, connect timeouts, 408/409/429 and 5xx are retried with
        exponential backoff and jitter, honouring ``Retry-After``, at most
        ``max_retries`` times. A wait longer than ``retry_max_wait`` (or past the
        total timeout) is not waited: the error is raised at once, with its
        ``retry_after``, so the client can be told when to come back.
        A read timeout is not retried: each try would cost another ``read_timeout``.

        ``abort`` fired from another greenlet shuts the connection in use (a FIN
        upstream) and ends a backoff at once: the post raises a connection error.
        """
        config = self.config
        route = self.route(url)
        # The bytes requests would send for json=body.
        data = json.dumps(body, allow_nan=False).encode()
        request = b"%s%d\r\n\r\n%s" % (route.head, len(data), data)
        attempt = 0
        while True:
            cause: BaseException | None = None
            if abort is not None and abort.aborted:
                raise self.stopped()
            try:
                response = exchange(
                    route.pool,
                    request,
                    connect_timeout=config.connect_timeout,
                    read_timeout=config.read_timeout,
                    tunnel=route.tunnel,
                    abort=abort,
                )
            except _TRANSPORT_ERRORS as exc:
                if abort is not None and abort.aborted:
                    raise self.stopped() from exc
                cause, error = exc, self.transport_error(exc, phase="connect")
                retryable = not isinstance(exc, TimeoutError)  # a read timeout
                retry_after = None
            else:
                if abort is not None:
                    # Ok: the caller may not hold the response yet. An error status: its
                    # connection may go back to the pool, where an abort must not reach it.
                    ok = response.status_code < 400
                    abort.on_abort(functools.partial(shutdown, response) if ok else None)
                if response.status_code < 400:
                    return response
                error = self.status_error(response)
                retryable = response.status_code in RETRY_STATUSES or response.status_code >= 500
                retry_after = error.retry_after
            wait = self.backoff(attempt, retry_after)
            if (
                not retryable
                or attempt >= config.max_retries
                or wait > config.retry_max_wait
                or time.monotonic() + wait > deadline
            ):
                raise error from cause
            logger.info(
                "%s: %s; retry %d/%d in %.2f s",
                self.provider,
                error.message,
                attempt + 1,
                config.max_retries,
                wait,
            )
            for hook in self.on_retry:
                hook()
            if abort is None:
                self.sleep(wait)
            elif abort.wait(wait):
                raise self.stopped()
            attempt += 1

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """``Retry-After`` when given, else exponential with "equal jitter"."""
        if retry_after is not None:
            return retry_after
        step = min(self.config.retry_max_wait, BACKOFF_BASE * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def status_error(self, response: UpstreamResponse) -> ProviderStatusError:
        """An error status as an exception; reads a bounded part of the body, then closes it."""
        body = b""
        try:
            while len(body) < ERROR_BODY_LIMIT:
                piece = response.read()
                if not piece:
                    break
                body += piece
        except _TRANSPORT_ERRORS:
            pass
        finally:
            response.close()
        status = response.status_code
        return ProviderStatusError(
            f"The {self.provider} provider answered HTTP {status}: "
            f"{self.scrub(upstream_message(body[:ERROR_BODY_LIMIT]))}",
            provider=self.provider,
            upstream_status=status,
            retry_after=parse_retry_after(response.headers),
        )

    def stopped(self) -> ProviderConnectionError:
        """What an aborted post raises (its caller asked for it, and ignores it)."""
        return ProviderConnectionError(
            f"The request to the {self.provider} provider was stopped.", provider=self.provider
        )

    def transport_error(self, exc: BaseException, *, phase: str) -> ProviderError:
        """A ``requests``/socket error as ours. ``str(exc)`` (hosts, internals) stays out."""
        config, name = self.config, self.provider
        if _is_timeout(exc):
            if isinstance(exc, ConnectFailed):
                message = (
                    f"The {name} provider did not accept a connection"
                    f" within {config.connect_timeout:g} s."
                )
            else:
                message = f"The {name} provider sent nothing for {config.read_timeout:g} s."
            return ProviderTimeout(message, provider=name)
        if phase == "connect":
            return ProviderConnectionError(f"Could not reach the {name} provider.", provider=name)
        return ProviderConnectionError(
            f"The connection to the {name} provider broke mid-stream.", provider=name
        )

    def body_reader(self, response: UpstreamResponse, *, deadline: float) -> Callable[[], bytes]:
        """A function returning the body's next piece as it arrives, ``b""`` at the end.

        Errors are translated, and the total timeout is checked before each read
        after the first. A plain function rather than a generator: the producer
        blocks in it between tokens, and a shallower stack is less to save per
        waiting greenlet.
        """
        read = response.read
        first = True

        def next_piece() -> bytes:
            nonlocal first
            if first:
                first = False
            elif time.monotonic() > deadline:
                raise ProviderTimeout(
                    f"The {self.provider} answer exceeded the total timeout of "
                    f"{self.config.total_timeout:g} s.",
                    provider=self.provider,
                )
            try:
                return read()
            except _TRANSPORT_ERRORS as exc:
                raise self.transport_error(exc, phase="body") from exc

        return next_piece

    def iter_body(self, response: UpstreamResponse, *, deadline: float) -> Iterator[bytes]:
        """The body's bytes as they arrive, with errors translated and the total timeout checked."""
        next_piece = self.body_reader(response, deadline=deadline)
        while piece := next_piece():
            yield piece

    def fetch_json(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST for a whole JSON answer (the non-streaming APIs), with the same policies."""
        deadline = self.deadline()
        response = self.post(url, body, deadline=deadline)
        try:
            raw = b"".join(self.iter_body(response, deadline=deadline))
        finally:
            response.close()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ProviderProtocolError(
                f"The {self.provider} provider answered with malformed JSON.",
                provider=self.provider,
            ) from exc
        if not isinstance(data, dict):
            raise ProviderProtocolError(
                f"The {self.provider} provider answered with unexpected JSON.",
                provider=self.provider,
            )
        return data


# -- routes ---------------------------------------------------------------------------


class _Route:
    """A URL's pool and the fixed part of its request head (up to ``Content-Length: ``)."""

    __slots__ = ("head", "pool", "tunnel")

    def __init__(self, pool: Any, head: bytes, tunnel: bool) -> None:
        self.pool = pool
        self.head = head
        self.tunnel = tunnel


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_header(scheme: str, host: str, port: int | None) -> str:
    """The ``Host`` header as http.client writes it: IDNA, the port only when not the default."""
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


def shutdown(response: UpstreamResponse) -> None:
    """Shut the response's socket down (a FIN upstream, EOF for a blocked read), if it has one.

    Safe from any greenlet or thread: unlike ``response.close()``, it touches no state
    the reading greenlet holds. A response whose connection went back to the pool has
    no socket any more.
    """
    response.shutdown()
