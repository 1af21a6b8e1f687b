"""The HTTP transport shared by every network adapter: one boundary for ``requests``.

Here, and only here, ``requests``/``urllib3``/socket/JSON errors become the
project's exception tree (``raise ... from exc``). The pieces:

- :class:`HTTPTransport`: one pooled :class:`requests.Session` per provider,
  timeouts (connect, read-idle, total) and retries before the first byte;
- :class:`StreamParser`: a wire format's pure event -> :class:`Chunk` logic;
- :class:`HTTPChunkStream`: an open SSE response driven through a parser, with
  an ``abort()`` that works from another greenlet or thread;
- :class:`HTTPProvider`: key, base URL and transport resolution for adapters.

Nothing is retried once a stream has begun: text may already be on its way.
"""

from __future__ import annotations

import abc
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
from typing import Any, ClassVar, Protocol

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from .._version import __version__
from ..chunks import Answer, AnswerBuilder, ChatRequest, Chunk, Message, text_of
from ..errors import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderStatusError,
    ProviderTimeout,
)
from ..sse import ServerSentEvent, SSEDecoder
from .base import ChunkStream, Provider, ProviderConfig

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
        secrets: Iterable[str | None] = (),
        base_url: str | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.sleep: Callable[[float], None] = time.sleep
        self._secrets = tuple(s for s in secrets if s)
        self.session = requests.Session()
        # pool_block=False: past pool_size, extra connections open and are dropped after use.
        adapter = HTTPAdapter(
            pool_connections=4, pool_maxsize=max(1, config.pool_size), max_retries=0
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": f"flask-ai-sse/{__version__}", **headers})
        if base_url is not None:
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


# -- parsing a wire format ----------------------------------------------------------


class StreamParser(abc.ABC):
    """A wire format's events -> normalized chunks. Pure: no I/O, testable alone."""

    #: What ends the stream, for error messages.
    terminator: ClassVar[str] = "its terminator"

    def __init__(self, *, provider: str, model: str, scrub: Callable[[str], str]) -> None:
        self.provider = provider
        self.model = model
        self.scrub = scrub
        #: Set once the format's terminator was read; later events are ignored.
        self.finished = False

    @abc.abstractmethod
    def feed(self, event: ServerSentEvent) -> Iterable[Chunk]:
        """Chunks for one upstream event; raise a :class:`ProviderError` for error events."""

    @abc.abstractmethod
    def answer(self, data: dict[str, Any]) -> Iterable[Chunk]:
        """A whole non-streamed answer as the chunks its stream would have produced."""

    def end(self) -> Iterable[Chunk]:
        """The body ended before the terminator. Formats that end at EOF override it."""
        raise ProviderProtocolError(
            f"The {self.provider} stream ended without {self.terminator}.", provider=self.provider
        )

    def json(self, data: str) -> dict[str, Any]:
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise ProviderProtocolError(
                f"The {self.provider} stream sent malformed JSON.", provider=self.provider
            ) from exc
        if not isinstance(value, dict):
            raise ProviderProtocolError(
                f"The {self.provider} stream sent unexpected JSON.", provider=self.provider
            )
        return value

    def upstream_error(self, error: Any) -> ProviderError:
        """An error the provider reported inside a 200 stream."""
        detail = error.get("message") or error.get("type") if isinstance(error, dict) else error
        return ProviderError(
            f"The {self.provider} provider reported an error mid-stream: {self.scrub(str(detail))}",
            provider=self.provider,
        )

    def finish(self, reason: str, raw: str) -> Chunk:
        return Chunk("finish", finish_reason=reason, raw_finish_reason=raw, model=self.model)


@contextlib.contextmanager
def unexpected_shape(provider: str, what: str) -> Iterator[None]:
    """A parser's KeyError & co. on JSON it did not expect, as a protocol error."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProviderProtocolError(
            f"The {provider} {what} of an unexpected shape.", provider=provider
        ) from exc


# -- the stream --------------------------------------------------------------------


class _Shutdownable(Protocol):
    def shutdown(self, how: int, /) -> None: ...


def _socket_of(response: requests.Response) -> _Shutdownable | None:
    """The response's live socket, or None once its connection went back to the pool."""
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    return sock if callable(getattr(sock, "shutdown", None)) else None


class HTTPChunkStream(ChunkStream):
    """An open SSE response, read with the project's decoder and turned into chunks.

    One greenlet iterates; it alone closes the response (``close()`` and the
    end of iteration). :meth:`abort` may come from any other greenlet or thread
    while that one is blocked in a socket read: it shuts the socket down, which
    sends the upstream a FIN and wakes the read with EOF; the reader sees
    ``aborted``, closes the response itself and stops quietly. (Closing a
    ``requests`` response from another greenlet fails with "reentrant call" and
    leaves the socket open.)
    """

    def __init__(
        self,
        response: requests.Response,
        parser: StreamParser,
        *,
        transport: HTTPTransport,
        deadline: float,
    ) -> None:
        super().__init__(provider=parser.provider, model=parser.model)
        self.response = response
        self.parser = parser
        self._transport = transport
        self._deadline = deadline
        self.closed = False

    def __iter__(self) -> Iterator[Chunk]:
        parser = self.parser
        try:
            for event in self._events():
                if self.aborted:
                    return
                if parser.finished:
                    continue  # drain to EOF so the connection can go back to the pool
                with unexpected_shape(self.provider, "stream sent an event"):
                    yield from parser.feed(event)
                self.model = parser.model
            if not self.aborted and not parser.finished:
                yield from parser.end()
        finally:
            self.close()

    def _events(self) -> Iterator[ServerSentEvent]:
        decoder = SSEDecoder()
        try:
            for piece in self._transport.iter_body(self.response, deadline=self._deadline):
                for event in decoder.feed(piece):
                    if isinstance(event, ServerSentEvent):
                        yield event
        except ProviderError:
            # After an abort the read ends in EOF or an error of our own making; after the
            # terminator, a failure while draining loses nothing.
            if self.aborted or self.parser.finished:
                return
            raise
        decoder.close()

    def close(self) -> None:
        """Close the response (a connection not read to its end is dropped, not pooled)."""
        if not self.closed:
            self.closed = True
            self.response.close()

    def abort(self) -> None:
        super().abort()
        sock = _socket_of(self.response)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


# -- the adapters' base ------------------------------------------------------------


class HTTPProvider(Provider):
    """What the network adapters share: key, base URL and a transport.

    Subclasses say where (``default_base_url``), which environment variables
    hold the key (``key_env``), how to send it (:meth:`auth_headers`), and how
    to build requests and read answers.
    """

    default_base_url: ClassVar[str]
    key_env: ClassVar[tuple[str, ...]] = ()
    key_required: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"The {self.name} base URL must start with http:// or https://, "
                f"not {self.base_url!r}."
            )
        api_key = config.api_key or next(
            (os.environ[var] for var in self.key_env if os.environ.get(var)), None
        )
        if api_key is None and self.key_required:
            where = " or ".join(("AI_SSE_API_KEY", *self.key_env))
            raise ConfigurationError(f"The {self.name} provider needs an API key: set {where}.")
        extra = config.options.get("headers") or {}
        self.transport = HTTPTransport(
            config,
            provider=self.name,
            headers={**self.auth_headers(api_key), **extra},
            secrets=(api_key,),
            base_url=self.base_url,
        )

    @abc.abstractmethod
    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers that carry the key (and any fixed ones the API requires)."""

    @abc.abstractmethod
    def stream_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body that start a streamed answer."""

    @abc.abstractmethod
    def parser(self, request: ChatRequest) -> StreamParser:
        """A fresh parser for one streamed answer."""

    @abc.abstractmethod
    def complete_request(self, request: ChatRequest) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body of the non-streaming API."""

    def open(self, request: ChatRequest) -> HTTPChunkStream:
        deadline = self.transport.deadline()
        url, body = self.stream_request(request)
        response = self.transport.post(url, body, deadline=deadline)
        return HTTPChunkStream(
            response, self.parser(request), transport=self.transport, deadline=deadline
        )

    def complete(self, request: ChatRequest) -> Answer:
        url, body = self.complete_request(request)
        data = self.transport.fetch_json(url, body)
        parser = self.parser(request)
        builder = AnswerBuilder(model=request.model, provider=self.name)
        with unexpected_shape(self.name, "provider answered with JSON"):
            for chunk in parser.answer(data):
                builder.add(chunk)
        builder.model = parser.model
        return builder.answer()

    def close(self) -> None:
        self.transport.close()


# -- request helpers ------------------------------------------------------------------


def split_system(request: ChatRequest) -> tuple[str | None, list[Message]]:
    """``system`` plus any system-role messages, joined, and the other messages.

    For the APIs that take the system prompt beside the messages (Anthropic, Gemini).
    """
    parts = [request.system] if request.system else []
    parts += [text_of(m["content"]) for m in request.messages if m["role"] == "system"]
    rest = [m for m in request.messages if m["role"] != "system"]
    return ("\n\n".join(parts) if parts else None), rest


def with_options(body: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` added to ``body``; nested dicts (``generationConfig``) merge one level.

    The fields the adapter set win: options add to a request, they don't rewrite it.
    """
    merged = dict(options)
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
