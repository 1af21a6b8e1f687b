"""The Server-Sent Events wire format: a pure encoder and an incremental decoder.

No Flask, no provider, no I/O here. The decoder follows the WHATWG HTML
"event stream interpretation" rules to the letter (CR, LF and CRLF line ends,
a CRLF split across two network chunks, one leading BOM, comments, fields with
no colon, one leading space removed, ``retry`` only when all ASCII digits,
``id`` containing NUL ignored, the last event id changed only by a dispatched
event, an unterminated last event discarded, UTF-8 split across chunks, invalid
UTF-8 replaced). The encoder never lets a value break the framing.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DONE",
    "Comment",
    "SSEDecoder",
    "ServerSentEvent",
    "encode",
    "encode_comment",
    "encode_json",
    "iter_events",
    "json_dumps",
]

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"
_SURROGATE = re.compile("[\ud800-\udfff]")

#: The line the default protocol ends every stream with.
DONE = b"data: [DONE]\n\n"


# One encoder for every call: json.dumps() with options builds a new one each time.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_dumps(value: Any) -> str:
    """Compact JSON on one line: JSON escapes CR and LF, so it never breaks framing.

    Non-ASCII stays as is (``ensure_ascii=False``), except lone surrogates
    (half an emoji, from an upstream ``"\\ud83d"``), which are escaped, because
    they cannot be encoded as UTF-8. NaN and infinities raise
    :class:`ValueError`: a browser's ``JSON.parse`` rejects them.
    """
    text = _JSON.encode(value)
    if text.isascii():
        return text
    # Raw surrogates can only be inside JSON strings, where \uXXXX means the same.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _check_field(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"SSE {name} must be a str, not {type(value).__name__}")
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

    ``data`` that is not a ``str`` is sent as compact JSON (see
    :func:`json_dumps`), always on one line. Text with line breaks (CRLF, CR
    or LF) becomes several ``data:`` lines, which the client joins with LF: so
    ``"a\\r\\nb"`` arrives as ``"a\\nb"``. That is the SSE rule, not a choice;
    send JSON to carry CRs exactly. A ``comment`` with line breaks becomes
    several comment lines.

    A CR or LF in ``event`` or ``id``, a NUL in ``id``, or a ``retry`` that is
    not a non-negative ``int`` raises :class:`ValueError`; so does a lone
    surrogate in text (:class:`UnicodeEncodeError`: it has no UTF-8 form).
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


def encode_json(data: Any, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event whose data is ``data`` as JSON: the hot path of the default protocol.

    The same bytes as :func:`encode` for non-``str`` data, faster: compact JSON is
    one line (it escapes CR and LF), so nothing needs splitting.
    """
    head = ""
    if event is not None:
        head = f"event: {_check_field('event', event)}\n"
    if id is not None:
        head += f"id: {_check_field('id', id)}\n"
    return f"{head}data: {json_dumps(data)}\n\n".encode()


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

    :attr:`last_event_id` is what a browser would send as ``Last-Event-ID``: it
    changes only when an event is dispatched (a blank line), never for an ``id``
    field of an event that has not ended yet. It and :attr:`retry` survive
    :meth:`close`, so one decoder can follow a stream across reconnections.
    """

    def __init__(self, *, comments: bool = False) -> None:
        self._comments = comments
        #: The reconnection time in ms from the last valid ``retry`` field.
        self.retry: int | None = None
        # The WHATWG "last event ID string" and "last event ID buffer";
        # None until the stream sets one, so events can say "no id".
        self._last_id: str | None = None
        self._id: str | None = None
        self._reset()

    def _reset(self) -> None:
        """Per-connection state: what a new response starts from."""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Whether _utf8 holds part of a character (only then must a chunk go through it).
        self._utf8_pending = False
        self._started = False
        self._skip_lf = False
        self._tail: list[str] = []
        self._data: list[str] = []
        self._event = ""
        self._id = self._last_id

    @property
    def last_event_id(self) -> str:
        """The id of the last dispatched event (``""`` when none was set)."""
        return self._last_id or ""

    def feed(self, chunk: bytes) -> list[ServerSentEvent | Comment]:
        """Decode ``chunk`` and return the events (and comments) it completes."""
        if self._utf8_pending:
            text = self._utf8_incremental(chunk)
        else:
            try:  # the usual piece: whole characters, decoded without the incremental codec
                text = chunk.decode()
            except UnicodeDecodeError:
                text = self._utf8_incremental(chunk)
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
        if "\r" in text:
            lines = _LINE_END.split(text)
        elif "\n" in text:
            lines = text.split("\n")
        else:
            # Part of a line: keep the pieces, join them once the line ends
            # (joining on every chunk would be quadratic in the line length).
            if text:
                self._tail.append(text)
            return []
        if self._tail:
            lines[0] = "".join(self._tail) + lines[0]
        last = lines.pop()
        self._tail = [last] if last else []
        # A CR ending the chunk ended a line already (so its event goes out
        # now); an LF opening the next chunk is the rest of that CRLF.
        self._skip_lf = text[-1] == "\r"
        out: list[ServerSentEvent | Comment] = []
        for line in lines:
            if line[:5] == "data:":  # the usual line, without a call
                self._data.append(line[6:] if line[5:6] == " " else line[5:])
                continue
            item = self._line(line)
            if item is not None:
                out.append(item)
        return out

    def _utf8_incremental(self, chunk: bytes) -> str:
        text = self._utf8.decode(chunk)
        self._utf8_pending = bool(self._utf8.getstate()[0])
        return text

    def close(self) -> list[ServerSentEvent | Comment]:
        """End of stream: an unterminated last event is discarded, as WHATWG says.

        Always returns ``[]``; it exists so callers need not know that.
        """
        self._utf8.decode(b"", final=True)
        self._reset()
        return []

    def _line(self, line: str) -> ServerSentEvent | Comment | None:
        if not line:
            return self._dispatch()
        colon = line.find(":")
        if colon == 0:
            if not self._comments:
                return None
            return Comment(line[2:] if line[1:2] == " " else line[1:])
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
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self._last_id = self._id
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(data="\n".join(data), event=event or "message", id=self._id)


def iter_events(
    chunks: Iterable[bytes], *, comments: bool = False
) -> Iterator[ServerSentEvent | Comment]:
    """Decode an iterable of byte chunks (e.g. ``iter_content(chunk_size=None)``)."""
    decoder = SSEDecoder(comments=comments)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    decoder.close()
