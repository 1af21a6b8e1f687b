"""One HTTP/1.1 exchange on a connection from a ``requests`` session's own urllib3 pool.

The session still decides everything users configure (proxies, TLS verification,
pool size, headers) and urllib3 still connects (DNS, TCP, TLS, proxy tunnels);
what goes is the per-request machinery above the socket (``Session.send``,
``http.client`` and ``email`` header parsing, three response objects with their
cookie jars and header dicts, a ``readline`` per chunk). A request is one
``sendall``; a response head is parsed once; each ``recv`` is decoded through
chunked framing in one pass. That cut a stream's set-up and per-token CPU and
the memory an open stream holds (see benchmarks/README.md).

Errors are left as they come (socket errors, urllib3's connect errors,
:class:`UpstreamBroken`), marked by phase, for ``_transport`` to translate.
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import zlib
from typing import Any

from .base import AbortSignal

#: What one ``recv`` asks for: a TLS record is at most 16 KiB, a plain read takes what is there.
RECV_SIZE = 65536
#: The longest response head (status line and headers) accepted.
HEAD_LIMIT = 65536
#: The longest chunk-size line (with extensions) accepted.
CHUNK_LINE_LIMIT = 4096

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) +(\d{3})(?: [^\r\n]*)?\r?")

# Body framing states (``UpstreamResponse._left`` when not a byte count).
_SIZE_LINE = -1  # expecting a chunk-size line
_CHUNK_END = -2  # expecting the CRLF after a chunk's data
_TRAILERS = -3  # after the last chunk: trailer lines up to a blank one
_TO_EOF = -4  # a close-delimited body


class UpstreamBroken(OSError):
    """The upstream broke HTTP framing or closed the connection too early."""


class ConnectFailed(OSError):
    """Opening the connection (TCP, proxy tunnel, TLS) failed; ``timed_out`` if by timeout."""

    def __init__(self, timed_out: bool) -> None:
        super().__init__("connect timed out" if timed_out else "could not connect")
        self.timed_out = timed_out


class Headers(dict[str, str]):
    """Response headers, keyed by lower-case name; lookups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


def _decoder(encoding: str) -> Any:
    """A zlib decompressor for the codings the request offers (``gzip, deflate``)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return _Deflate()
    raise UpstreamBroken(f"unsupported Content-Encoding {encoding!r}")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (wrongly, but commonly) raw."""

    def __init__(self) -> None:
        self._first = True
        self._data = b""
        self._obj: Any = zlib.decompressobj()

    def decompress(self, data: bytes) -> bytes:
        if not self._first:
            return bytes(self._obj.decompress(data))
        self._data += data
        try:
            out = self._obj.decompress(self._data)
        except zlib.error:
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(self._data)
        self._first = False
        self._data = b""
        return bytes(out)

    def flush(self) -> bytes:
        return bytes(self._obj.flush())


class UpstreamResponse:
    """One response on a pooled connection: status, headers, then :meth:`read` pieces.

    One greenlet reads and closes it; :meth:`shutdown` may come from any other.
    A body read to its end on a keep-alive connection puts the connection back
    in the pool; anything else closes it.
    """

    __slots__ = (
        "_buf",
        "_chunked",
        "_conn",
        "_decoder",
        "_left",
        "_pool",
        "_reusable",
        "_sock",
        "complete",
        "headers",
        "status_code",
    )

    def __init__(
        self,
        pool: Any,
        conn: Any,
        sock: Any,
        status: int,
        headers: Headers,
        rest: bytes,
        *,
        http11: bool,
    ) -> None:
        self.status_code = status
        self.headers = headers
        self._pool = pool
        self._conn = conn
        self._sock = sock
        self._buf = rest
        self.complete = False
        connection = headers.get("connection", "").lower()
        self._reusable = "close" not in connection if http11 else "keep-alive" in connection
        coding = headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._chunked = False
        if status in (204, 304):
            self._left = 0
        elif coding:
            if coding.rsplit(",", 1)[-1].strip() != "chunked":
                self._left, self._reusable = _TO_EOF, False
            else:
                self._left, self._chunked = _SIZE_LINE, True
        elif length is not None:
            try:
                self._left = int(length.split(",")[0])
            except ValueError:
                raise UpstreamBroken("malformed Content-Length") from None
            if self._left < 0:
                raise UpstreamBroken("malformed Content-Length")
        else:
            self._left, self._reusable = _TO_EOF, False
        if self._left == 0:
            self.complete = True
        encoding = headers.get("content-encoding", "").strip().lower()
        self._decoder = _decoder(encoding) if encoding and encoding != "identity" else None

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status_code}>"

    def read(self) -> bytes:
        """The next piece of the body as it arrives (decoded), ``b""`` at its end."""
        while True:
            if self._buf and not self.complete:
                piece = self._parse()
                if piece:
                    return self._decoder.decompress(piece) if self._decoder else piece
            if self.complete:
                if self._decoder is not None:
                    tail, self._decoder = self._decoder.flush(), None
                    if tail:
                        return bytes(tail)
                return b""
            data = self._sock.recv(RECV_SIZE)
            if not data:
                if self._left != _TO_EOF:
                    raise UpstreamBroken("the connection closed inside the body")
                self.complete = True
            elif self._buf:
                self._buf += data
            else:
                self._buf = data

    def _parse(self) -> bytes:
        """Take what the buffer holds of the body; framing state stays in ``_buf``/``_left``."""
        buf, left = self._buf, self._left
        if left == _TO_EOF:
            self._buf = b""
            return buf
        if not self._chunked:  # a Content-Length body
            piece, self._buf = buf[:left], buf[left:]
            self._left = left - len(piece)
            self.complete = self._left == 0
            return piece
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while pos < size:
            if left > 0:
                take = min(left, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                left -= take
                if left == 0:
                    left = _CHUNK_END
            elif left == _CHUNK_END:
                if size - pos < 2:
                    break
                pos += 2  # the CRLF after the data (http.client does not check it either)
                left = _SIZE_LINE
            else:  # a size line or a trailer line
                end = buf.find(b"\n", pos)
                if end < 0:
                    if size - pos > CHUNK_LINE_LIMIT:
                        raise UpstreamBroken("chunk-size line too long")
                    break
                line = buf[pos:end]
                pos = end + 1
                if left == _TRAILERS:
                    if not line.strip():
                        self.complete = True
                        break
                    continue
                try:
                    chunk = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise UpstreamBroken("malformed chunk size") from None
                if chunk < 0:
                    raise UpstreamBroken("malformed chunk size")
                left = chunk if chunk else _TRAILERS
        self._buf = buf[pos:] if pos < size else b""
        self._left = left
        return out[0] if len(out) == 1 else b"".join(out)

    def close(self) -> None:
        """Release the connection: back to the pool when the body was read to its end."""
        conn, self._conn, self._sock = self._conn, None, None
        if conn is None:
            return
        if self.complete and self._reusable and not self._buf:
            self._pool._put_conn(conn)
        else:
            conn.close()
            self._pool._put_conn(None)

    def shutdown(self) -> None:
        """A FIN upstream and EOF for a blocked read; safe from any greenlet or thread."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def exchange(
    pool: Any,
    request: bytes,
    *,
    connect_timeout: float,
    read_timeout: float,
    tunnel: bool,
    abort: AbortSignal | None = None,
) -> UpstreamResponse:
    """Send ``request`` (head and body) on a pooled connection; return once the head is read.

    Raises :class:`ConnectFailed` when no connection could be opened, and socket
    errors (``TimeoutError`` for the read timeout) or :class:`UpstreamBroken` after.
    ``abort``, fired from another greenlet, shuts the connection's socket: the wait
    for the head ends at once (an abort during the connect takes effect after it).
    """
    conn = pool._get_conn()
    try:
        if conn.sock is None:
            conn.timeout = connect_timeout
            try:
                if tunnel and pool.proxy is not None:
                    pool._prepare_proxy(conn)
                if conn.sock is None:
                    conn.connect()
            except Exception as exc:
                raise ConnectFailed(_connect_timed_out(exc)) from exc
        if abort is not None:  # shut at once if the abort came during the connect
            abort.on_abort(functools.partial(_shut, conn.sock))
        sock = conn.sock
        sock.settimeout(read_timeout)
        sock.sendall(request)
        status, http11, headers, rest = _read_head(sock)
        return UpstreamResponse(pool, conn, sock, status, headers, rest, http11=http11)
    except BaseException:
        conn.close()
        pool._put_conn(None)
        raise


def _shut(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _connect_timed_out(exc: BaseException) -> bool:
    import urllib3.exceptions as u3

    if isinstance(exc, u3.NewConnectionError):  # refused: a subclass of the timeout, for history
        return False
    return isinstance(exc, u3.ConnectTimeoutError | TimeoutError)


def _read_head(sock: Any) -> tuple[int, bool, Headers, bytes]:
    """Status, HTTP/1.1 or not, headers, and whatever of the body came with them.

    Interim 1xx answers (``100 Continue``, ``103 Early Hints``) are skipped.
    """
    buf = b""
    while True:
        match = _HEAD_END.search(buf)
        while match is None:
            if len(buf) > HEAD_LIMIT:
                raise UpstreamBroken("response head too long")
            data = sock.recv(RECV_SIZE)
            if not data:
                raise UpstreamBroken("the connection closed before a response")
            buf += data
            match = _HEAD_END.search(buf, max(0, len(buf) - len(data) - 3))
        head, buf = buf[: match.start()], buf[match.end() :]
        lines = head.split(b"\n")
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise UpstreamBroken("malformed status line")
        status = int(status_line[3])
        if 100 <= status < 200:
            continue
        http11 = (status_line[1], status_line[2]) >= (b"1", b"1")
        headers = Headers()
        name = ""
        for raw in lines[1:]:
            line = raw.rstrip(b"\r").decode("latin-1")
            if line[:1] in (" ", "\t") and name:  # an obsolete folded continuation
                headers[name] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            if not colon:
                continue
            name = name.strip().lower()
            value = value.strip()
            previous = dict.get(headers, name)
            headers[name] = value if previous is None else f"{previous}, {value}"
        return status, http11, headers, buf
