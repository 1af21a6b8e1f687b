"""The Server-Sent Events wire format: a pure encoder and an incremental decoder.

No Flask, no provider, no I/O here. The decoder follows the WHATWG HTML
"event stream interpretation" rules to the letter (CR, LF and CRLF line ends,
a CRLF split across two network chunks, one leading BOM, comments, fields with
no colon, one leading space removed, ``retry`` only when all ASCII digits,
``id`` containing NUL ignored, an unterminated last event discarded, UTF-8
split across chunks). The encoder never lets a value break the framing.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DONE",
    "Comment",
    "SSEDecoder",
    "ServerSentEvent",
    "encode",
    "encode_comment",
    "iter_events",
    "json_dumps",
]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"

#: The line the default protocol ends every stream with.
DONE = b"data: [DONE]\n\n"


def json_dumps(value: Any) -> str:
    """Compact JSON on one line: JSON escapes CR and LF, so it never breaks framing."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _check_field(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"SSE {name} must not contain CR or LF: {value!r}")
    if name == "id" and "\0" in value:
        raise ValueError("SSE id must not contain NUL (browsers would ignore it)")
    return value


def encode(
    data: Any = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Encode one event as bytes, ending with the blank line that dispatches it.

    ``data`` that is not a ``str`` is sent as compact JSON. Text with line
    breaks becomes several ``data:`` lines, which the client joins with LF.
    A CR or LF in ``event`` or ``id`` raises :class:`ValueError`.
    """
    parts: list[str] = []
    if comment is not None:
        parts.extend(f": {line}\n" if line else ":\n" for line in _LINE_END.split(comment))
    if event is not None:
        parts.append(f"event: {_check_field('event', event)}\n")
    if id is not None:
        parts.append(f"id: {_check_field('id', id)}\n")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"SSE retry must be a non-negative int: {retry!r}")
        parts.append(f"retry: {retry}\n")
    if data is not None:
        text = data if isinstance(data, str) else json_dumps(data)
        parts.extend(f"data: {line}\n" for line in _LINE_END.split(text))
    if not parts:
        raise ValueError("an SSE event needs data, event, id, retry or comment")
    parts.append("\n")
    return "".join(parts).encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """A comment block (``: text``), as sent for keepalives; clients ignore it."""
    return encode(comment=text)


@dataclass(frozen=True)
class ServerSentEvent:
    """One event, as a view builds it or as :class:`SSEDecoder` reads it.

    When decoded, ``event`` is ``"message"`` for unnamed events, ``data`` is the
    joined text, and ``id`` is the last event id in force at dispatch (the
    WHATWG ``lastEventId``), or ``None`` when no id was ever set.
    """

    data: Any = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def encode(self) -> bytes:
        return encode(self.data, event=self.event, id=self.id, retry=self.retry)

    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


@dataclass(frozen=True)
class Comment:
    """A comment line (``: text``): keepalives, or anything clients should ignore."""

    text: str = ""

    def encode(self) -> bytes:
        return encode_comment(self.text)


class SSEDecoder:
    """Incremental event-stream decoder: feed it bytes as they arrive.

    >>> d = SSEDecoder()
    >>> d.feed(b"data: Hel")
    []
    >>> d.feed(b"lo\\r")
    []
    >>> [e.data for e in d.feed(b"\\n\\n")]
    ['Hello']

    With ``comments=True`` comment lines are returned too, as :class:`Comment`.
    """

    def __init__(self, *, comments: bool = False) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._comments = comments
        self._started = False
        self._skip_lf = False
        self._tail = ""
        self._data: list[str] = []
        self._event = ""
        self._id_seen = False
        self.last_event_id = ""
        #: The reconnection time in ms from the last valid ``retry`` field.
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent | Comment]:
        """Decode ``chunk`` and return the events (and comments) it completes."""
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == _BOM:
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        lines = _LINE_END.split(self._tail + text)
        self._tail = lines.pop()
        if text.endswith("\r"):
            # The CR already ended a line; an LF opening the next chunk belongs to it.
            self._skip_lf = True
        out: list[ServerSentEvent | Comment] = []
        for line in lines:
            item = self._line(line)
            if item is not None:
                out.append(item)
        return out

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream: an unterminated last event is discarded, as WHATWG says."""
        self._utf8.decode(b"", final=True)
        self._tail = ""
        self._data = []
        self._event = ""
        return []

    def _line(self, line: str) -> ServerSentEvent | Comment | None:
        if not line:
            return self._dispatch()
        colon = line.find(":")
        if colon == 0:
            return Comment(line[2:] if line[1:2] == " " else line[1:]) if self._comments else None
        if colon < 0:
            name, value = line, ""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == " ":
                value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id_seen = True
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(
            data="\n".join(data),
            event=event or "message",
            id=self.last_event_id if self._id_seen else None,
        )


def iter_events(chunks: Iterable[bytes], *, comments: bool = False) -> Iterable[ServerSentEvent | Comment]:
    """Decode an iterable of byte chunks (e.g. ``iter_content(chunk_size=None)``)."""
    decoder = SSEDecoder(comments=comments)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    decoder.close()
