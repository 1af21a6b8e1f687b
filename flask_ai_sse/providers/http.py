"""The base of the network adapters: subclass these to add a wire format.

- :class:`StreamParser`: a wire format's pure event -> :class:`~flask_ai_sse.Chunk` logic;
- :class:`HTTPProvider`: key, base URL and requests for one API, over a pooled
  transport with timeouts and retries (the ``requests`` boundary lives in the
  private ``_transport`` module);
- :class:`HTTPChunkStream`: an open SSE response driven through a parser, with
  an ``abort()`` that works from another greenlet or thread;
- :func:`split_system`, :func:`with_options`, :func:`unexpected_shape`: what
  the built-in adapters use to build requests and read answers.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from ..chunks import Answer, AnswerBuilder, ChatRequest, Chunk, Message, text_of
from ..errors import ConfigurationError, ProviderError, ProviderProtocolError
from ..sse import ServerSentEvent, SSEDecoder
from ._http1 import UpstreamResponse
from ._transport import HTTPTransport, shutdown
from .base import AbortSignal, ChunkStream, Provider, ProviderConfig

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


# What a parser raises on JSON of a shape it did not expect.
_SHAPE_ERRORS = (KeyError, IndexError, TypeError, AttributeError)


@contextlib.contextmanager
def unexpected_shape(provider: str, what: str) -> Iterator[None]:
    """A parser's KeyError & co. on JSON it did not expect, as a protocol error."""
    try:
        yield
    except _SHAPE_ERRORS as exc:
        raise ProviderProtocolError(
            f"The {provider} {what} of an unexpected shape.", provider=provider
        ) from exc


# -- the stream --------------------------------------------------------------------


class HTTPChunkStream(ChunkStream):
    """An open SSE response, read with the project's decoder and turned into chunks.

    One greenlet iterates; it alone closes the response (``close()`` and the
    end of iteration). :meth:`abort` may come from any other greenlet or thread
    while that one is blocked in a socket read: it shuts the socket down, which
    sends the upstream a FIN and wakes the read with EOF; the reader sees
    ``aborted``, closes the response itself and stops quietly. (Closing a
    ``requests`` response from another greenlet fails with "reentrant call" and
    leaves the socket open.) ``response`` is what :meth:`HTTPProvider.open` got from
    its transport.
    """

    def __init__(
        self,
        response: UpstreamResponse,
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
        # One generator from bytes to chunks: this runs once per upstream event.
        parser = self.parser
        aborted = self._aborted.is_set
        decoder = SSEDecoder()
        next_piece = self._transport.body_reader(self.response, deadline=self._deadline)
        try:
            while True:
                try:
                    piece = next_piece()
                except ProviderError:
                    # After an abort the read ends in EOF or an error of our own making;
                    # after the terminator, a failure while draining loses nothing.
                    if aborted() or parser.finished:
                        return
                    raise
                if not piece:
                    break
                for event in decoder.feed(piece):
                    if aborted():
                        return
                    if parser.finished or not isinstance(event, ServerSentEvent):
                        continue  # drain to EOF so the connection can go back to the pool
                    try:
                        yield from parser.feed(event)
                    except _SHAPE_ERRORS as exc:
                        raise ProviderProtocolError(
                            f"The {self.provider} stream sent an event of an unexpected shape.",
                            provider=self.provider,
                        ) from exc
                    self.model = parser.model
            decoder.close()
            if not aborted() and not parser.finished:
                yield from parser.end()
        finally:
            self.close()

    def close(self) -> None:
        """Close the response (a connection not read to its end is dropped, not pooled)."""
        if not self.closed:
            self.closed = True
            self.response.close()

    def abort(self) -> None:
        super().abort()
        shutdown(self.response)


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
        return self._open(request, None)

    def open_abortable(self, request: ChatRequest, abort: AbortSignal) -> HTTPChunkStream:
        return self._open(request, abort)

    def _open(self, request: ChatRequest, abort: AbortSignal | None) -> HTTPChunkStream:
        deadline = self.transport.deadline()
        url, body = self.stream_request(request)
        response = self.transport.post(url, body, deadline=deadline, abort=abort)
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


__all__ = [
    "HTTPChunkStream",
    "HTTPProvider",
    "StreamParser",
    "split_system",
    "unexpected_shape",
    "with_options",
]
