"""The ``requests`` boundary: one pooled session per provider, retries, timeouts, errors.

Here, and only here, ``requests``/``urllib3``/socket/JSON errors become the
project's exception tree (``raise ... from exc``). :class:`HTTPTransport` posts
with timeouts (connect, read-idle, total) and retries before the first byte,
iterates a body, and :func:`shutdown` ends a response's socket from any greenlet.

Nothing is retried once a stream has begun: text may already be on its way.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import os
import random
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .._version import __version__
from ..errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderStatusError,
    ProviderTimeout,
)
from .base import ProviderConfig

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


# -- errors -------------------------------------------------------------------


def _is_timeout(exc: BaseException) -> bool:
    """Whether a transport error was a timeout (requests' own classes are the reliable ones).

    Chains can't be trusted: urllib3's refused-connection error subclasses its
    connect-timeout error for history's sake.
    """
    if isinstance(exc, requests.RequestException):
        # iter_content wraps urllib3's ReadTimeoutError in a plain ConnectionError.
        return isinstance(exc, requests.Timeout) or any(
            isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args
        )
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
        self.session.headers.update({"User-Agent": f"flask-ai-sse/{__version__}", **headers})
        # requests reads proxy variables and ~/.netrc anew on every request (a third of
        # a short stream's set-up CPU); this transport talks to one origin, so read the
        # environment once. The keys' own auth headers make netrc moot.
        self.session.proxies = requests.utils.get_environ_proxies(base_url)
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self.session.trust_env = False

    def __repr__(self) -> str:
        return f"<HTTPTransport {self.provider!r} pool={self.config.pool_size}>"

    def close(self) -> None:
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

    def post(self, url: str, body: Mapping[str, Any], *, deadline: float) -> requests.Response:
        """POST and return once the status is known and good, retrying before the first byte.

        Connection errors, connect timeouts, 408/409/429 and 5xx are retried with
        exponential backoff and jitter, honouring ``Retry-After``, at most
        ``max_retries`` times. A wait longer than ``retry_max_wait`` (or past the
        total timeout) is not waited: the error is raised at once, with its
        ``retry_after``, so the client can be told when to come back.
        A read timeout is not retried: each try would cost another ``read_timeout``.
        """
        config = self.config
        # Prepared once and sent as is: Session.post would merge cookies, hooks, auth and
        # settings anew on every call, for a request that never uses them.
        prepared = requests.PreparedRequest()
        prepared.prepare(method="POST", url=url, headers=self.session.headers, json=body)
        attempt = 0
        while True:
            cause: BaseException | None = None
            try:
                response = self.session.send(
                    prepared.copy(),
                    stream=True,
                    timeout=(config.connect_timeout, config.read_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                cause, error = exc, self.transport_error(exc, phase="connect")
                retryable = not isinstance(exc, requests.ReadTimeout)
                retry_after = None
            else:
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
            self.sleep(wait)
            attempt += 1

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """``Retry-After`` when given, else exponential with "equal jitter"."""
        if retry_after is not None:
            return retry_after
        step = min(self.config.retry_max_wait, BACKOFF_BASE * 2.0**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def status_error(self, response: requests.Response) -> ProviderStatusError:
        """An error status as an exception; reads a bounded part of the body, then closes it."""
        try:
            body = response.raw.read(ERROR_BODY_LIMIT, decode_content=True) or b""
        except _TRANSPORT_ERRORS:
            body = b""
        finally:
            response.close()
        status = response.status_code
        return ProviderStatusError(
            f"The {self.provider} provider answered HTTP {status}: "
            f"{self.scrub(upstream_message(body))}",
            provider=self.provider,
            upstream_status=status,
            retry_after=parse_retry_after(response.headers),
        )

    def transport_error(self, exc: BaseException, *, phase: str) -> ProviderError:
        """A ``requests``/socket error as ours. ``str(exc)`` (hosts, internals) stays out."""
        config, name = self.config, self.provider
        if _is_timeout(exc):
            if phase == "connect" and isinstance(exc, requests.ConnectTimeout):
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

    def iter_body(self, response: requests.Response, *, deadline: float) -> Iterator[bytes]:
        """The body's bytes as they arrive, with errors translated and the total timeout checked.

        ``iter_content(chunk_size=None)`` streams chunked bodies piece by piece
        but reads a close-delimited one to its end, so that case uses ``read1``.
        """
        raw = response.raw
        read1 = getattr(raw, "read1", None)
        if getattr(raw, "chunked", True) or read1 is None:
            pieces: Iterator[bytes] = response.iter_content(chunk_size=None)
        else:
            pieces = iter(lambda: read1(65536), b"")
        try:
            for piece in pieces:
                yield piece
                if time.monotonic() > deadline:
                    raise ProviderTimeout(
                        f"The {self.provider} answer exceeded the total timeout of "
                        f"{self.config.total_timeout:g} s.",
                        provider=self.provider,
                    )
        except _TRANSPORT_ERRORS as exc:
            raise self.transport_error(exc, phase="body") from exc

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


# -- aborting from another greenlet ---------------------------------------------------


class _Shutdownable(Protocol):
    def shutdown(self, how: int, /) -> None: ...


def _socket_of(response: requests.Response) -> _Shutdownable | None:
    """The response's live socket, or None once its connection went back to the pool."""
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    return sock if callable(getattr(sock, "shutdown", None)) else None


def shutdown(response: requests.Response) -> None:
    """Shut the response's socket down (a FIN upstream, EOF for a blocked read), if it has one.

    Safe from any greenlet or thread: unlike ``response.close()``, it touches no state
    the reading greenlet holds.
    """
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
