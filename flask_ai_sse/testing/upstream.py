"""Mock upstream servers that speak the OpenAI, Anthropic and Gemini streaming APIs.

A test starts one on a free loopback port, scripts its answers and faults, then
reads what it received and how many streams it still holds open::

    with OpenAIMock(api_key="test-key") as mock:
        mock.script(MockReply(status=429, retry_after="1"), MockReply(text="Hello!"))
        ...  # point a provider or SDK at mock.base_url
        assert mock.requests[-1].json["model"] == "gpt-4o-mini"
        assert mock.wait_for_open_streams(0)

Each speaks its format as the real API does: status line and headers, event
names, JSON shapes, usage, terminators, chunked transfer encoding and
keep-alive (so client connection pools are really exercised). Replies are
consumed in order; the last one repeats. The servers are raw sockets, so faults
are real TCP events: an RST (``SO_LINGER`` 0), a FIN in the middle of a chunked
body, a stall that notices the client leaving.

For benchmarks the module runs alone under gevent, serving thousands of
concurrent streams, with its counters at ``GET /_mock/stats``::

    python -m flask_ai_sse.testing.upstream --format openai --port 9100 --tokens 200 --delay-ms 20
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import http
import itertools
import json
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl

from ..providers.fake import split_tokens

__all__ = [
    "FORMATS",
    "AnthropicMock",
    "GeminiMock",
    "MockReply",
    "MockToolCall",
    "MockUpstream",
    "OpenAIMock",
    "RecordedRequest",
    "main",
]

#: ``reset``: TCP RST; ``close``: FIN inside the chunked body; ``malformed``: a frame
#: of broken JSON; ``no_terminator``: the body ends without the format's end marker;
#: ``error_event``: the format's in-stream error, then the body ends.
Fault = Literal["reset", "close", "malformed", "no_terminator", "error_event"]
#: How the core treats a frame: ``meta`` is written as is; ``item`` is content (counted
#: for ``at``, paced by ``delay``); ``tail`` is finish/usage; ``end`` is the terminator.
FrameKind = Literal["meta", "item", "tail", "end"]
Frame = tuple[FrameKind, bytes]
#: A content item: ("reasoning", str), ("text", str), ("tool", (index, call)),
#: ("tool_args", (index, str)).
Item = tuple[str, Any]

CREATED = 1_700_000_000  # a fixed "created" timestamp keeps recorded streams reproducible


@dataclass(frozen=True)
class MockToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = "call_mock_1"


@dataclass
class MockReply:
    """One scripted answer, and the faults to inject into it.

    ``chunks`` overrides how ``text`` is split (default: word by word).
    ``finish_reason`` is the normalized one; each format sends its own word,
    or ``raw_finish_reason`` verbatim. Usage: ``prompt_tokens`` in, one token
    per reasoning piece, text piece and tool call out.

    Faults: ``status`` >= 400 answers an error (with ``Retry-After`` when
    ``retry_after`` is set); ``headers_delay`` waits before the status line.
    In a stream, before content item number ``at`` (or before the finish if
    there are fewer): ``stall`` seconds of silence (ended early if the client
    leaves), then ``inject`` raw bytes, then ``fault``. ``split_writes`` sends
    every frame in two TCP writes, the cut inside its first multi-byte
    character (an emoji split across packets). ``chunked=False`` sends a
    close-delimited body instead of chunked encoding.
    """

    text: str = "Hello from the mock upstream!"
    chunks: Sequence[str] | None = None
    reasoning: Sequence[str] = ()
    tool_calls: Sequence[MockToolCall] = ()
    finish_reason: str = "stop"
    raw_finish_reason: str | None = None
    model: str | None = None
    prompt_tokens: int = 10
    delay: float = 0.0
    status: int = 200
    retry_after: str | None = None
    error_message: str | None = None
    headers_delay: float = 0.0
    stall: float = 0.0
    fault: Fault | None = None
    at: int = 0
    inject: bytes = b""
    split_writes: bool = False
    chunked: bool = True

    def pieces(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else split_tokens(self.text)

    @property
    def completion_tokens(self) -> int:
        return len(self.reasoning) + len(self.pieces()) + len(self.tool_calls)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def items(self) -> Iterator[Item]:
        """The content in order: reasoning, text, then each tool call (arguments in two pieces)."""
        for piece in self.reasoning:
            yield "reasoning", piece
        for piece in self.pieces():
            yield "text", piece
        for index, call in enumerate(self.tool_calls):
            yield "tool", (index, call)
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            yield "tool_args", (index, arguments[:half])
            yield "tool_args", (index, arguments[half:])


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the mock received it. Header names are lower-cased."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Call:
    """One answer being produced: what was asked, what to reply, under which ids."""

    request: RecordedRequest
    reply: MockReply
    model: str
    id: str


class _ClientGone(Exception):
    """The client closed its side while the mock waited or wrote."""


def sse(data: Any, event: str | None = None, *, newline: str = "\n") -> bytes:
    """One SSE frame with compact JSON, UTF-8 as is (so multi-byte characters cross the wire)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}{newline}" if event else ""
    return f"{head}data: {text}{newline}{newline}".encode()


def _split_inside_char(data: bytes) -> list[bytes]:
    """Two pieces, cut just after the lead byte of the first multi-byte character."""
    cut = next((i + 1 for i, byte in enumerate(data) if byte >= 0xC0), len(data) // 2)
    return [piece for piece in (data[:cut], data[cut:]) if piece]


def _head(status: int, headers: dict[str, str]) -> bytes:
    """A response's status line and header block."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Reader:
    """Reads HTTP/1.1 requests off a keep-alive connection (Content-Length bodies)."""

    LIMIT = 1 << 20

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        if len(self.buffer) > self.LIMIT:
            raise ValueError("request too large for the mock")
        return bool(data)

    def request(self) -> RecordedRequest | None:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(self.buffer) < length:
            if not self._fill():
                return None
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        path, _, query = target.partition("?")
        return RecordedRequest(method, path, dict(parse_qsl(query)), headers, body)


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], mock: MockUpstream) -> None:
        self.mock = mock
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _ThreadingServer

    def handle(self) -> None:
        self.server.mock.serve_connection(self.request)


@dataclass
class _Stats:
    requests: int = 0
    connections_open: int = 0
    connections_total: int = 0
    open_streams: int = 0
    streams_total: int = 0
    streams_completed: int = 0
    streams_cut: int = 0  # by a reset/close fault
    streams_client_closed: int = 0


class MockUpstream(abc.ABC):
    """The format-neutral server: sockets, HTTP, scripts, faults, records and counters.

    Subclasses render one API's routes, frames, answers and error bodies.
    Use as a context manager, or ``start()``/``stop()``; ``serve_gevent()``
    serves in the current process under gevent instead (the CLI).
    """

    name: ClassVar[str]
    #: The part of ``base_url`` after the origin (the API version).
    prefix: ClassVar[str]
    default_model: ClassVar[str]
    #: Normalized finish reason -> this API's word for it (identity when absent).
    FINISH: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        default: MockReply | None = None,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        #: When set, requests without this key get the API's 401.
        self.api_key = api_key
        self.default = default or MockReply()
        self.record = record
        #: Every request that reached an API route, in order.
        self.requests: list[RecordedRequest] = []
        self._script: list[MockReply] = []
        self._stats = _Stats()
        self._changed = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._sleep: Callable[[float], None] = time.sleep
        self._select: Callable[..., Any] = select.select

    # -- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The origin, ``http://127.0.0.1:<port>`` (what the official SDKs of Anthropic take)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``AI_SSE_BASE_URL`` (and the OpenAI SDK's ``base_url``) should be."""
        return self.url + self.prefix

    def start(self) -> MockUpstream:
        self._server = _ThreadingServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-mock",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, and end every open connection (stalled streams included)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._changed:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> MockUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_gevent(
        self, *, backlog: int = 4096, ready: Callable[[str], object] | None = None
    ) -> None:
        """Serve forever in this process with gevent's own server (no monkey-patching).

        ``ready`` is called with :attr:`base_url` once the port is bound.
        """
        import gevent
        import gevent.select
        from gevent.server import StreamServer

        self._sleep = gevent.sleep
        self._select = gevent.select.select
        server = StreamServer(
            (self.host, self.port), lambda sock, _addr: self.serve_connection(sock), backlog=backlog
        )
        server.init_socket()
        self.port = server.server_port
        if ready is not None:
            ready(self.base_url)
        server.serve_forever()

    # -- scripting and observing ---------------------------------------------------------

    def script(self, *replies: MockReply | str) -> None:
        """Answer the next requests with ``replies`` in order; the last one repeats."""
        with self._changed:
            self._script = [r if isinstance(r, MockReply) else MockReply(text=r) for r in replies]

    def _next_reply(self) -> MockReply:
        with self._changed:
            if not self._script:
                return self.default
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    @property
    def open_streams(self) -> int:
        """Streams whose response the server is still writing (or stalling in)."""
        return self._stats.open_streams

    def stats(self) -> dict[str, int]:
        with self._changed:
            return dict(vars(self._stats))

    def wait_for(self, predicate: Callable[[dict[str, int]], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(stats())`` holds; False on timeout (assert on it, no sleeps)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(dict(vars(self._stats))), timeout)

    def wait_for_open_streams(self, count: int = 0, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda stats: stats["open_streams"] == count, timeout)

    def _count(self, **deltas: int) -> None:
        with self._changed:
            for key, delta in deltas.items():
                setattr(self._stats, key, getattr(self._stats, key) + delta)
            self._changed.notify_all()

    # -- connections ----------------------------------------------------------------------

    def serve_connection(self, sock: socket.socket) -> None:
        """Serve one client connection: requests in a keep-alive loop until either side ends."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._changed:
            self._sockets.add(sock)
        self._count(connections_open=1, connections_total=1)
        reader = _Reader(sock)
        try:
            while (request := reader.request()) is not None:
                if not self._respond(sock, request):
                    break
        except (OSError, ValueError, _ClientGone):
            pass
        finally:
            with self._changed:
                self._sockets.discard(sock)
            self._count(connections_open=-1)
            with contextlib.suppress(OSError):
                sock.close()

    def _respond(self, sock: socket.socket, request: RecordedRequest) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if request.method == "GET" and request.path == "/_mock/stats":
            self._send_json(sock, 200, self.stats())
            return True
        try:
            route = self.route(request)
        except ValueError:
            self._send_json(sock, 400, self.error_body(400, "The body is not valid JSON."))
            return True
        if route is None:
            self._send_json(sock, 404, self.error_body(404, f"No route for {request.path}."))
            return True
        if self.record:
            with self._changed:
                self.requests.append(request)
        self._count(requests=1)
        reply = self._next_reply()
        if self.api_key is not None and not self.authorized(request):
            self._send_json(sock, 401, self.error_body(401, "Invalid API key."))
            return True
        if reply.headers_delay:
            self._wait(sock, reply.headers_delay)
        if reply.status >= 400:
            message = reply.error_message or f"Mock error {reply.status}."
            headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            self._send_json(sock, reply.status, self.error_body(reply.status, message), headers)
            return True
        stream, model = route
        call = _Call(request, reply, reply.model or model, f"{next(self._ids):08d}")
        if not stream:
            self._send_json(sock, 200, self.answer(call), self.headers(call))
            return True
        return self._stream(sock, call)

    def _stream(self, sock: socket.socket, call: _Call) -> bool:
        reply = call.reply
        framing = {"Transfer-Encoding": "chunked"} if reply.chunked else {"Connection": "close"}
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **framing,
            **self.headers(call),
        }
        sock.sendall(_head(200, headers))
        self._count(open_streams=1, streams_total=1)
        outcome = "streams_client_closed"
        try:
            outcome = "streams_completed" if self._body(sock, call) else "streams_cut"
        except OSError:
            pass
        finally:
            self._count(open_streams=-1, **{outcome: 1})
        return outcome == "streams_completed" and reply.chunked

    def _body(self, sock: socket.socket, call: _Call) -> bool:
        """Write the frames with pacing and the fault; False when the body was cut short."""
        reply = call.reply
        items = 0
        interrupted = False
        for kind, frame in self.frames(call):
            if not interrupted and kind != "meta" and (kind != "item" or items == reply.at):
                interrupted = True
                outcome = self._interrupt(sock, call)
                if outcome is not None:
                    return outcome
            if kind == "item":
                if items and reply.delay:
                    self._sleep(reply.delay)
                items += 1
            if kind == "end" and reply.fault == "no_terminator":
                continue
            self._write(sock, reply, frame)
        self._end_body(sock, reply)
        return True

    def _interrupt(self, sock: socket.socket, call: _Call) -> bool | None:
        """Stall, inject, then the fault. None: carry on; a bool: the body is over."""
        reply = call.reply
        if reply.stall:
            self._wait(sock, reply.stall)
        if reply.inject:
            self._write(sock, reply, reply.inject)
        if reply.fault == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return False
        if reply.fault == "close":
            sock.shutdown(socket.SHUT_WR)
            return False
        if reply.fault == "malformed":
            self._write(sock, reply, self.malformed_frame(call))
        elif reply.fault == "error_event":
            self._write(sock, reply, self.error_frame(call))
            self._end_body(sock, reply)
            return True
        return None

    def _wait(self, sock: socket.socket, seconds: float) -> None:
        """Stay silent for ``seconds``; raise :class:`_ClientGone` as soon as the client leaves."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = self._select([sock], [], [], left)
            if not readable:
                continue
            try:
                peeked = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if not peeked:
                raise _ClientGone
            self._sleep(left)  # the client sent something early: nothing to do but wait
            return

    def _write(self, sock: socket.socket, reply: MockReply, data: bytes) -> None:
        for piece in _split_inside_char(data) if reply.split_writes else [data]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.chunked else piece)

    def _end_body(self, sock: socket.socket, reply: MockReply) -> None:
        if reply.chunked:
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.shutdown(socket.SHUT_WR)

    def _send_json(
        self, sock: socket.socket, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        fields = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        sock.sendall(_head(status, {**fields, **(headers or {})}) + data)

    # -- what each format defines ------------------------------------------------------------

    @abc.abstractmethod
    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        """(streaming?, model) for an API request, None for an unknown route.

        Raises ValueError for a body that is not JSON.
        """

    @abc.abstractmethod
    def authorized(self, request: RecordedRequest) -> bool: ...

    @abc.abstractmethod
    def frames(self, call: _Call) -> Iterator[Frame]:
        """The streamed answer, frame by frame, each tagged for pacing and faults."""

    @abc.abstractmethod
    def answer(self, call: _Call) -> dict[str, Any]:
        """The non-streamed answer's JSON body."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def error_frame(self, call: _Call) -> bytes:
        """The in-stream error the API sends after its 200."""

    @abc.abstractmethod
    def malformed_frame(self, call: _Call) -> bytes: ...

    def headers(self, call: _Call) -> dict[str, str]:
        return {}

    def finish_word(self, call: _Call) -> str:
        reply = call.reply
        return reply.raw_finish_reason or self.FINISH.get(reply.finish_reason, reply.finish_reason)


# -- OpenAI -----------------------------------------------------------------------------


class OpenAIMock(MockUpstream):
    """``POST /v1/chat/completions``, streaming ``chat.completion.chunk`` events."""

    name = "openai"
    prefix = "/v1"
    default_model = "gpt-4o-mini"
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            return None
        body = request.json
        return body.get("stream") is True, str(body.get("model") or self.default_model)

    def authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def headers(self, call: _Call) -> dict[str, str]:
        return {"x-request-id": f"req_{call.id}", "openai-processing-ms": "1"}

    def usage(self, reply: MockReply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": len(reply.reasoning),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _base(self, call: _Call, obj: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{call.id}",
            "object": obj,
            "created": CREATED,
            "model": call.model,
            "system_fingerprint": "fp_mock",
        }

    def frames(self, call: _Call) -> Iterator[Frame]:
        options = call.request.json.get("stream_options") or {}
        with_usage = bool(options.get("include_usage"))
        base = self._base(call, "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice], **({"usage": None} if with_usage else {})})

        yield "meta", chunk({"role": "assistant", "content": "", "refusal": None})
        for kind, value in call.reply.items():
            if kind == "reasoning":
                yield "item", chunk({"reasoning_content": value})
            elif kind == "text":
                yield "item", chunk({"content": value})
            elif kind == "tool":
                index, tool = value
                function = {"name": tool.name, "arguments": ""}
                start = {"index": index, "id": tool.id, "type": "function", "function": function}
                yield "item", chunk({"tool_calls": [start]})
            else:
                index, piece = value
                yield (
                    "item",
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                )
        yield "tail", chunk({}, self.finish_word(call))
        if with_usage:
            yield "tail", sse({**base, "choices": [], "usage": self.usage(call.reply)})
        yield "end", b"data: [DONE]\n\n"

    def answer(self, call: _Call) -> dict[str, Any]:
        reply = call.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(reply.pieces()) or None,
            "refusal": None,
        }
        if reply.reasoning:
            message["reasoning_content"] = "".join(reply.reasoning)
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tool.id,
                    "type": "function",
                    "function": {"name": tool.name, "arguments": json.dumps(tool.arguments)},
                }
                for tool in reply.tool_calls
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_word(call),
        }
        return {
            **self._base(call, "chat.completion"),
            "choices": [choice],
            "usage": self.usage(reply),
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = self.ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def error_frame(self, call: _Call) -> bytes:
        return sse(self.error_body(500, "The server had an error while processing your request."))

    def malformed_frame(self, call: _Call) -> bytes:
        return (
            b'data: {"id":"chatcmpl-' + call.id.encode() + b'","choices":[{"delta":{"content":\n\n'
        )


# -- Anthropic ----------------------------------------------------------------------------


class AnthropicMock(MockUpstream):
    """``POST /v1/messages``, streaming named events from ``message_start`` to ``message_stop``.

    Accepts the key as ``x-api-key`` or ``Authorization: Bearer`` (recent SDKs send either).
    """

    name = "anthropic"
    prefix = "/v1"
    default_model = "claude-sonnet-4-6"
    FINISH: ClassVar[dict[str, str]] = {
        "stop": "end_turn",
        "length": "max_tokens",
        "tool_calls": "tool_use",
        "content_filter": "refusal",
    }
    ERROR_TYPES: ClassVar[dict[int, str]] = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    BLOCKS: ClassVar[dict[str, str]] = {
        "reasoning": "thinking",
        "text": "text",
        "tool": "tool_use",
        "tool_args": "tool_use",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        if request.method != "POST" or not request.path.endswith("/messages"):
            return None
        body = request.json
        return body.get("stream") is True, str(body.get("model") or self.default_model)

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        )

    def headers(self, call: _Call) -> dict[str, str]:
        return {"request-id": f"req_{call.id}"}

    def frames(self, call: _Call) -> Iterator[Frame]:
        reply = call.reply
        message: dict[str, Any] = {
            "id": f"msg_{call.id}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
            },
        }
        yield "meta", sse({"type": "message_start", "message": message}, "message_start")
        index, current = -1, None
        for kind, value in reply.items():
            block = self.BLOCKS[kind]
            if kind == "tool" or block != current:
                if current is not None:
                    yield "meta", self._block_stop(index, current)
                index, current = index + 1, block
                start = self._block_start(index, kind, value)
                if kind == "tool":
                    yield "item", start
                    continue
                yield "meta", start
                if index == 0:
                    yield "meta", sse({"type": "ping"}, "ping")
            yield (
                "item",
                sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": self._delta(kind, value),
                    },
                    "content_block_delta",
                ),
            )
        if current is not None:
            yield "meta", self._block_stop(index, current)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self.finish_word(call), "stop_sequence": None},
            "usage": {"output_tokens": reply.completion_tokens},
        }
        yield "tail", sse(delta, "message_delta")
        yield "end", sse({"type": "message_stop"}, "message_stop")

    def _block_start(self, index: int, kind: str, value: Any) -> bytes:
        if kind == "tool":
            _, tool = value
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": tool.id,
                "name": tool.name,
                "input": {},
            }
        elif kind == "reasoning":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "text", "text": ""}
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return sse(data, "content_block_start")

    def _delta(self, kind: str, value: Any) -> dict[str, Any]:
        if kind == "reasoning":
            return {"type": "thinking_delta", "thinking": value}
        if kind == "tool_args":
            return {"type": "input_json_delta", "partial_json": value[1]}
        return {"type": "text_delta", "text": value}

    def _block_stop(self, index: int, block: str) -> bytes:
        frame = b""
        if block == "thinking":
            signature = {"type": "signature_delta", "signature": "EqQBCgIYAhIMmock"}
            data = {"type": "content_block_delta", "index": index, "delta": signature}
            frame = sse(data, "content_block_delta")
        return frame + sse({"type": "content_block_stop", "index": index}, "content_block_stop")

    def answer(self, call: _Call) -> dict[str, Any]:
        reply = call.reply
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            thinking = "".join(reply.reasoning)
            content.append({"type": "thinking", "thinking": thinking, "signature": "EqQBmock"})
        if reply.pieces():
            content.append({"type": "text", "text": "".join(reply.pieces())})
        content += [
            {"type": "tool_use", "id": t.id, "name": t.name, "input": t.arguments}
            for t in reply.tool_calls
        ]
        return {
            "id": f"msg_{call.id}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": content,
            "stop_reason": self.finish_word(call),
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "output_tokens": reply.completion_tokens,
            },
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = self.ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def error_frame(self, call: _Call) -> bytes:
        return sse(self.error_body(529, "Overloaded"), "error")

    def malformed_frame(self, call: _Call) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'


# -- Gemini -----------------------------------------------------------------------------------


class GeminiMock(MockUpstream):
    """``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (and ``:generateContent``).

    Frames end with CRLF CRLF, as Google's servers send them; each is a whole
    ``GenerateContentResponse``; the last carries ``finishReason``; the body
    just ends. Tool calls arrive whole (Gemini does not stream arguments).
    """

    name = "gemini"
    prefix = "/v1beta"
    default_model = "gemini-2.5-flash"
    FINISH: ClassVar[dict[str, str]] = {
        "stop": "STOP",
        "length": "MAX_TOKENS",
        "tool_calls": "STOP",
        "content_filter": "SAFETY",
    }
    STATUSES: ClassVar[dict[int, str]] = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }

    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        prefix = f"{self.prefix}/models/"
        if request.method != "POST" or not request.path.startswith(prefix):
            return None
        model, _, method = request.path[len(prefix) :].partition(":")
        request.json  # noqa: B018 - a body that is not JSON is a 400, as upstream
        if method == "streamGenerateContent" and request.query.get("alt") == "sse":
            return True, model
        if method == "generateContent":
            return False, model
        return None

    def authorized(self, request: RecordedRequest) -> bool:
        return self.api_key in (request.headers.get("x-goog-api-key"), request.query.get("key"))

    def _response(
        self, call: _Call, parts: list[dict[str, Any]], out: int, finish: bool
    ) -> dict[str, Any]:
        """A ``GenerateContentResponse`` with ``parts``, after ``out`` output tokens."""
        reply = call.reply
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = self.finish_word(call)
        thoughts = min(out, len(reply.reasoning))
        usage = {
            "promptTokenCount": reply.prompt_tokens,
            "candidatesTokenCount": out - thoughts,
            "totalTokenCount": reply.prompt_tokens + out,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": call.model,
            "responseId": f"resp_{call.id}",
        }

    def _parts(self, reply: MockReply) -> Iterator[dict[str, Any]]:
        for kind, value in reply.items():
            if kind == "reasoning":
                yield {"text": value, "thought": True}
            elif kind == "text":
                yield {"text": value}
            elif kind == "tool":
                _, tool = value
                yield {"functionCall": {"name": tool.name, "args": tool.arguments}}

    def frames(self, call: _Call) -> Iterator[Frame]:
        for out, part in enumerate(self._parts(call.reply), 1):
            yield "item", sse(self._response(call, [part], out, False), newline="\r\n")
        out = call.reply.completion_tokens
        yield "end", sse(self._response(call, [{"text": ""}], out, True), newline="\r\n")

    def answer(self, call: _Call) -> dict[str, Any]:
        reply = call.reply
        return self._response(call, list(self._parts(reply)), reply.completion_tokens, True)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "error": {
                "code": status,
                "message": message,
                "status": self.STATUSES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN"),
            }
        }

    def error_frame(self, call: _Call) -> bytes:
        body = self.error_body(503, "The model is overloaded. Please try again later.")
        return sse(body, newline="\r\n")

    def malformed_frame(self, call: _Call) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": "oops\r\n\r\n'


FORMATS: dict[str, type[MockUpstream]] = {
    mock.name: mock for mock in (OpenAIMock, AnthropicMock, GeminiMock)
}


# -- standalone ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one format under gevent until killed, e.g. for a benchmark's upstream."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_ai_sse.testing.upstream", description=main.__doc__
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--tokens", type=int, default=50, help="text pieces per answer")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="pause between pieces")
    parser.add_argument("--api-key", default=None, help="require this key (default: any)")
    args = parser.parse_args(argv)

    try:  # one socket per stream: ask for every descriptor the hard limit allows
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass

    reply = MockReply(chunks=[f"tok{i} " for i in range(args.tokens)], delay=args.delay_ms / 1000)
    mock = FORMATS[args.format](
        host=args.host, port=args.port, api_key=args.api_key, default=reply, record=False
    )
    mock.serve_gevent(ready=lambda url: print(f"{args.format} mock upstream at {url}", flush=True))


if __name__ == "__main__":
    main()
