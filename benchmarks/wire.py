"""Just enough HTTP/1.1 and SSE for the load generator: pure code, no I/O.

:class:`StreamParser` takes the bytes of one response as they arrive and
returns, per call, the number of token events they completed. A token event is
an SSE event whose JSON data has a non-empty ``"content"`` string: the relays'
``{"content": "..."}`` and the OpenAI ``delta`` of the mock upstream alike.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(rb'"content": ?"[^"]')
_DONE = b"data: [DONE]"
_ERROR = b"event: error"


class ProtocolError(Exception):
    """The response is not the HTTP/SSE the benchmark expects."""


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder (trailers are not expected)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is still to come
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes that ``data`` completes."""
        buffer = self._buffer + data
        out: list[bytes] = []
        pos = 0
        while not self.finished:
            if self._left:
                piece = buffer[pos : pos + self._left]
                out.append(piece)
                self._left -= len(piece)
                pos += len(piece)
                if self._left:
                    break
                self._crlf = True
            if self._crlf:
                if len(buffer) - pos < 2:
                    break
                if buffer[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                pos += 2
                self._crlf = False
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                if len(buffer) - pos > 1024:
                    raise ProtocolError("chunk size line too long")
                break
            size = int(buffer[pos:end].split(b";", 1)[0], 16)
            pos = end + 2
            if size == 0:
                self.finished = True
            self._left = size
        self._buffer = buffer[pos:]
        return b"".join(out)


class StreamParser:
    """One SSE response: status line, headers, chunked body, events.

    After each :meth:`feed`, :attr:`status`, :attr:`done` (``[DONE]`` seen),
    :attr:`error` (an ``error`` event seen) and :attr:`ended` (the body is over)
    tell where the response stands.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self.done = False
        self.error = False
        self.ended = False
        self._head = b""
        self._chunked: ChunkedDecoder | None = None
        self._events = b""

    def feed(self, data: bytes) -> int:
        """Consume bytes; return how many token events they completed."""
        if self.status is None:
            self._head += data
            head, sep, rest = self._head.partition(b"\r\n\r\n")
            if not sep:
                if len(self._head) > 65536:
                    raise ProtocolError("response head too long")
                return 0
            self._head = b""
            self._start(head)
            data = rest
        if self._chunked is not None:
            body = self._chunked.feed(data)
            self.ended = self._chunked.finished
        else:
            body = data
        return self._scan(body)

    def _start(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        self.status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = ChunkedDecoder()

    def _scan(self, body: bytes) -> int:
        if not body:
            return 0
        events = self._events + body
        if b"\n\n" not in events:
            self._events = events
            return 0
        complete, _, self._events = events.rpartition(b"\n\n")
        tokens = 0
        for event in complete.split(b"\n\n"):
            if _TOKEN.search(event):
                tokens += 1
            elif event.startswith(_DONE) or event.endswith(_DONE):
                self.done = True
            elif _ERROR in event:
                self.error = True
        return tokens

    def eof(self) -> None:
        """The connection closed: a body without chunked framing ends here."""
        if self._chunked is None:
            self.ended = True
