"""The default protocol (docs/wire.rst): the stored data, framed.

The log already holds each event's ``data`` as the default protocol sends it, so
encoding is byte concatenation: no JSON is parsed or built per reader.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..sse import DONE, _check_field
from .base import KINDS, Encoder

__all__ = ["DefaultEncoder"]

#: What precedes the id's value, per kind: text is an unnamed (``message``) event.
_HEADS: dict[bytes, bytes] = {
    kind.encode(): b"id: " if kind == "text" else f"event: {kind}\nid: ".encode() for kind in KINDS
}


class DefaultEncoder(Encoder):
    """``event: <kind>`` (none for text), ``id: <stream_id>:<seq>``, ``data: <stored>``."""

    name = "default"

    def __init__(self, stream_id: str, *, retry: int = 3000, **options: object) -> None:
        super().__init__(stream_id, retry=retry, **options)
        self._id = _check_field("id", f"{stream_id}:").encode()

    def encode(self, first_seq: int, entries: Sequence[bytes]) -> bytes:
        out: list[bytes] = []
        sid = self._id
        seq = first_seq
        for entry in entries:
            kind, _, payload = entry.partition(b"\n")
            if payload:
                head = (
                    _HEADS.get(kind)
                    or b"event: %s\nid: " % _check_field("event", kind.decode()).encode()
                )
                out.append(b"%s%s%d\ndata: %s\n\n" % (head, sid, seq, payload))
            else:
                out.append(DONE)
            seq += 1
        return b"".join(out)
