"""Test helpers for the Redis store: a TCP proxy that can fail like a network, a refused port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections, held bound so nothing else (not even a TCP
    self-connect of a client retrying it) can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class TcpProxy:
    """A loopback proxy to Redis that a test can cut (Redis went away), freeze (a black
    hole) or restore. It keeps its port throughout: a cut proxy accepts and hangs up."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thawed = threading.Event()
        self._thawed.set()
        self._refusing = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self._refusing.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._thawed.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def freeze(self) -> None:
        """Keep every connection open but forward nothing: what a lost network looks like."""
        self._thawed.clear()

    def cut(self) -> None:
        """Close every connection and hang up on new ones: Redis went away."""
        self._refusing.set()
        with self._lock:
            socks = list(self._sockets)
        self._drop(*socks)

    def restore(self) -> None:
        self._refusing.clear()
        self._thawed.set()

    def close(self) -> None:
        self.cut()
        self._thawed.set()
        self._listener.close()
