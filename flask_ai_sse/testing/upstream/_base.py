"""What every mock format shares: scripted replies, faults, request records, counters.

:class:`MockUpstream` serves the HTTP exchange and injects the faults; a subclass
(one module per wire format) renders one API's routes, frames, answers and errors.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ...providers.fake import split_tokens
from ._server import (
    ClientGone,
    RecordedRequest,
    RequestReader,
    ThreadingServer,
    head,
    send_json,
    split_inside_char,
)

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


@dataclass(frozen=True)
class MockToolCall:
    """A scripted call; ``arguments`` as a string goes out verbatim (e.g. broken JSON)
    where the format streams arguments as text (OpenAI, Anthropic), in ``pieces``
    fragments of about equal length (at least one)."""

    name: str
    arguments: dict[str, Any] | str
    id: str = "call_mock_1"
    pieces: int = 2

    @property
    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    @property
    def object(self) -> dict[str, Any]:
        """The arguments as an object, for formats that carry one (``{}`` if they don't parse)."""
        if isinstance(self.arguments, dict):
            return self.arguments
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


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
            arguments = call.text
            count = max(1, call.pieces)
            cuts = [len(arguments) * i // count for i in range(count + 1)]
            for start, end in itertools.pairwise(cuts):
                yield "tool_args", (index, arguments[start:end])


@dataclass
class Call:
    """One answer being produced: what was asked, what to reply, under which ids."""

    request: RecordedRequest
    reply: MockReply
    model: str
    id: str


def sse(data: Any, event: str | None = None, *, newline: str = "\n") -> bytes:
    """One SSE frame with compact JSON, UTF-8 as is (so multi-byte characters cross the wire)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}{newline}" if event else ""
    return f"{head}data: {text}{newline}{newline}".encode()


@dataclass
class Stats:
    requests: int = 0
    connections_open: int = 0
    connections_total: int = 0
    open_streams: int = 0
    streams_total: int = 0
    streams_completed: int = 0
    streams_cut: int = 0  # by a reset/close fault
    streams_client_closed: int = 0
    heads_pending: int = 0  # requests held in ``headers_delay``, before their status line
    heads_abandoned: int = 0  # ... whose client closed the connection during that wait


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
        self._stats = Stats()
        self._changed = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._ids = itertools.count(1)
        self._server: ThreadingServer | None = None
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
        self._server = ThreadingServer((self.host, self.port), self.serve_connection)
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
        reader = RequestReader(sock)
        try:
            while (request := reader.request()) is not None:
                if not self._respond(sock, request):
                    break
        except (OSError, ValueError, ClientGone):
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
            send_json(sock, 200, self.stats())
            return True
        try:
            route = self.route(request)
        except ValueError:
            send_json(sock, 400, self.error_body(400, "The body is not valid JSON."))
            return True
        if route is None:
            send_json(sock, 404, self.error_body(404, f"No route for {request.path}."))
            return True
        if self.record:
            with self._changed:
                self.requests.append(request)
        self._count(requests=1)
        reply = self._next_reply()
        if self.api_key is not None and not self.authorized(request):
            send_json(sock, 401, self.error_body(401, "Invalid API key."))
            return True
        if reply.headers_delay:
            self._count(heads_pending=1)
            try:
                self._wait(sock, reply.headers_delay)
            except ClientGone:
                self._count(heads_abandoned=1)
                raise
            finally:
                self._count(heads_pending=-1)
        if reply.status >= 400:
            message = reply.error_message or f"Mock error {reply.status}."
            headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            send_json(sock, reply.status, self.error_body(reply.status, message), headers)
            return True
        stream, model = route
        call = Call(request, reply, reply.model or model, f"{next(self._ids):08d}")
        if not stream:
            send_json(sock, 200, self.answer(call), self.headers(call))
            return True
        return self._stream(sock, call)

    def _stream(self, sock: socket.socket, call: Call) -> bool:
        reply = call.reply
        framing = {"Transfer-Encoding": "chunked"} if reply.chunked else {"Connection": "close"}
        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **framing,
            **self.headers(call),
        }
        sock.sendall(head(200, headers))
        self._count(open_streams=1, streams_total=1)
        outcome = "streams_client_closed"
        try:
            outcome = "streams_completed" if self._body(sock, call) else "streams_cut"
        except OSError:
            pass
        finally:
            self._count(open_streams=-1, **{outcome: 1})
        return outcome == "streams_completed" and reply.chunked

    def _body(self, sock: socket.socket, call: Call) -> bool:
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

    def _interrupt(self, sock: socket.socket, call: Call) -> bool | None:
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
        """Stay silent for ``seconds``; raise :class:`ClientGone` as soon as the client leaves."""
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
                raise ClientGone
            self._sleep(left)  # the client sent something early: nothing to do but wait
            return

    def _write(self, sock: socket.socket, reply: MockReply, data: bytes) -> None:
        for piece in split_inside_char(data) if reply.split_writes else [data]:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if reply.chunked else piece)

    def _end_body(self, sock: socket.socket, reply: MockReply) -> None:
        if reply.chunked:
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.shutdown(socket.SHUT_WR)

    # -- what each format defines ------------------------------------------------------------

    @abc.abstractmethod
    def route(self, request: RecordedRequest) -> tuple[bool, str] | None:
        """(streaming?, model) for an API request, None for an unknown route.

        Raises ValueError for a body that is not JSON.
        """

    @abc.abstractmethod
    def authorized(self, request: RecordedRequest) -> bool: ...

    @abc.abstractmethod
    def frames(self, call: Call) -> Iterator[Frame]:
        """The streamed answer, frame by frame, each tagged for pacing and faults."""

    @abc.abstractmethod
    def answer(self, call: Call) -> dict[str, Any]:
        """The non-streamed answer's JSON body."""

    @abc.abstractmethod
    def error_body(self, status: int, message: str) -> dict[str, Any]: ...

    @abc.abstractmethod
    def error_frame(self, call: Call) -> bytes:
        """The in-stream error the API sends after its 200."""

    @abc.abstractmethod
    def malformed_frame(self, call: Call) -> bytes: ...

    def headers(self, call: Call) -> dict[str, str]:
        return {}

    def finish_word(self, call: Call) -> str:
        reply = call.reply
        return reply.raw_finish_reason or self.FINISH.get(reply.finish_reason, reply.finish_reason)
