"""Custom streams: a view's own iterable of events, served like the built-in ones.

The iterable is consumed by its own thread/greenlet into a private
:class:`StreamLog`, so the response gets keepalives while the iterable is
slow, and a client that leaves stops the iterable at its next item.

What the iterable may yield:

* :class:`~flask_ai_sse.sse.ServerSentEvent` / :class:`~flask_ai_sse.sse.Comment`
* ``str`` (one unnamed event with that text) or a ``dict`` (one event, JSON data)
* ``bytes``, sent as they are (already encoded)
* a ``list`` or ``tuple`` of those: several events in one write
* :class:`End`: ends the stream, by default with ``data: [DONE]``
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import AISSEError
from ..sse import DONE, Comment, ServerSentEvent, encode
from .spawn import spawn
from .store import StreamLog

logger = logging.getLogger("flask_ai_sse")


class End:
    """Yield it to end a custom stream now, after ``final`` (``data: [DONE]`` by default)."""

    def __init__(self, final: ServerSentEvent | bytes | None = None, *, done: bool = True) -> None:
        self.final = final
        self.done = done

    def encode(self) -> bytes:
        out = encode_item(self.final) if self.final is not None else b""
        return out + DONE if self.done else out


def error_event(
    message: str, *, type: str = "error", code: str | int | None = None, id: str | None = None
) -> ServerSentEvent:
    """An ``event: error`` with the contract's ``{"error": {"type", "message"}}`` body."""
    error: dict[str, Any] = {"type": type, "message": message}
    if code is not None:
        error["code"] = code
    return ServerSentEvent({"error": error}, event="error", id=id)


def encode_item(item: Any) -> bytes:
    """Encode one thing a custom stream yielded."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, ServerSentEvent | Comment | End):
        return item.encode()
    if isinstance(item, list | tuple):
        return b"".join(encode_item(i) for i in item)
    if isinstance(item, str | dict):
        return encode(item)
    raise TypeError(
        f"a custom stream yielded {type(item).__name__}; expected ServerSentEvent, Comment, "
        "str, dict, bytes, a list of those, or End"
    )


class CustomStream:
    """Pumps ``iterable`` into a log from its own thread; ``stop()`` ends it early."""

    def __init__(
        self, iterable: Iterable[Any], *, wrap: Callable[[Callable[[], None]], Callable[[], None]]
    ) -> None:
        self.log = StreamLog()
        self._iterable = iterable
        self._stopped = threading.Event()
        self._run = wrap(self._pump)

    def start(self) -> None:
        spawn(self._run, name="ai-sse-custom")

    def stop(self) -> None:
        self._stopped.set()

    def _pump(self) -> None:
        iterator = iter(self._iterable)
        try:
            for item in iterator:
                if self._stopped.is_set():
                    return
                entry = encode_item(item)
                if isinstance(item, End):
                    self.log.append([entry], final=True)
                    return
                if entry:
                    self.log.append([entry])
        except AISSEError as exc:
            self.log.append([encode(exc.to_dict(), event="error")])
        except Exception:
            logger.exception("a custom event stream failed")
            self.log.append([encode(AISSEError().to_dict(), event="error")])
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            if not self.log.finished:
                self.log.append([], final=True)
