"""The raw-socket HTTP/1.1 server under the mocks: requests in, bytes out, no framework.

Raw sockets, so that a mock's faults are real TCP events and its keep-alive is real.
"""

from __future__ import annotations

import http
import json
import socket
import socketserver
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl


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


class ClientGone(Exception):
    """The client closed its side while the mock waited or wrote."""


def split_inside_char(data: bytes) -> list[bytes]:
    """Two pieces, cut just after the lead byte of the first multi-byte character."""
    cut = next((i + 1 for i, byte in enumerate(data) if byte >= 0xC0), len(data) // 2)
    return [piece for piece in (data[:cut], data[cut:]) if piece]


def head(status: int, headers: dict[str, str]) -> bytes:
    """A response's status line and header block."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send_json(
    sock: socket.socket, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    """A whole JSON response with its ``Content-Length`` (the connection stays reusable)."""
    data = json.dumps(body).encode()
    fields = {"Content-Type": "application/json", "Content-Length": str(len(data))}
    sock.sendall(head(status, {**fields, **(headers or {})}) + data)


class RequestReader:
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


class ThreadingServer(socketserver.ThreadingTCPServer):
    """A thread per connection, each socket handed to ``handle`` until it returns."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], handle: Callable[[socket.socket], None]) -> None:
        self.handle_connection = handle
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: ThreadingServer

    def handle(self) -> None:
        self.server.handle_connection(self.request)
