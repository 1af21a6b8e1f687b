"""Dropping clients that stopped reading (``AI_SSE_SEND_TIMEOUT``). No Flask here.

The server writes each piece a :class:`~flask_ai_sse.engine.reader.StreamReader`
hands it, then comes back for the next; the reader notes when it handed one out
(``writing_since``). A client that stops reading lets the kernel's buffers fill,
and the server's write blocks for good: its connection, and the reader's place
in the stream, would be held as long as the client likes. One watchdog per app
looks at the readers it watches every ``tick`` and shuts the socket of any whose
write has blocked ``timeout`` seconds. The blocked write then fails with
``EPIPE``, which servers take as an ordinary disconnect (gunicorn logs nothing):
the server closes the response, the reader detaches, and the generation's
disconnect grace starts.

A socket timeout would also end the write, but gunicorn logs that as an error
with a traceback: a flood of them is what a hostile client could buy.
"""

from __future__ import annotations

import _socket
import contextlib
import socket
import threading
import time
from typing import Any

from .engine.reader import StreamReader

__all__ = ["SendWatch"]


class SendWatch:
    """Shuts the connection of a reader whose write has blocked ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(1.0, max(0.05, timeout / 4))
        self._watched: dict[int, tuple[StreamReader, Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: How many connections it dropped (for tests and curious operators).
        self.dropped = 0

    def watch(self, reader: StreamReader, sock: Any) -> None:
        """Watch ``reader``, served over ``sock``, until it closes."""
        key = id(reader)
        with self._lock:
            self._watched[key] = (reader, sock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ai-sse-send-watch", daemon=True
                )
                self._thread.start()
        reader.call_on_close(lambda: self._forget(key))

    def _forget(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        """Drop every watched connection whose write has blocked too long."""
        with self._lock:
            stuck = [
                (key, sock)
                for key, (reader, sock) in self._watched.items()
                if reader.writing_since is not None and now - reader.writing_since >= self.timeout
            ]
            for key, _ in stuck:
                del self._watched[key]
        for _, sock in stuck:
            self.dropped += 1
            _shut_down(sock)


def _shut_down(sock: Any) -> None:
    """Shut ``sock`` down under the feet of the greenlet (or thread) blocked writing to it.

    Through a plain socket object on the same descriptor: gevent's own ``shutdown``
    would wake the writer with ``EBADF``, which servers log as an error; this way
    the writer's next ``send`` fails with an ordinary ``EPIPE``.
    """
    with contextlib.suppress(OSError, ValueError):
        fd = sock.fileno()
        if fd < 0:  # closed meanwhile
            return
        raw = _socket.socket(fileno=fd)
        try:
            raw.shutdown(socket.SHUT_RDWR)
        finally:
            raw.detach()  # the descriptor stays the server's to close
