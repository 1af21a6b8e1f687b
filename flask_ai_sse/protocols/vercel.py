"""The AI SDK's UI message stream, v1 (``useChat``, ``readUIMessageStream``).

Each SSE event's data is one chunk of the ``ai`` package's ``uiMessageChunkSchema``:

==================  ==========================================================
neutral event       UI message chunks
==================  ==========================================================
``start``           ``start`` (``messageId``, ``messageMetadata``), ``start-step``
``text``            ``text-start`` (when a text part opens), ``text-delta``
``reasoning``       ``reasoning-start`` (when a part opens), ``reasoning-delta``
``tool_call_delta`` ``tool-input-start`` (first piece), ``tool-input-delta``
``tool_call``       ``tool-input-start`` (unless streamed), ``tool-input-available``
``tool_result``     ``tool-output-available`` or ``tool-output-error``
``progress``        ``data-progress`` (``transient``: not kept in the message)
``done``            ``finish-step``, ``abort`` (after a cancel), ``finish``
``error``           ``error`` (``errorText``)
``end``             ``data: [DONE]``
==================  ==========================================================

A part is closed (``text-end``, ``reasoning-end``) when another kind of content
begins or the stream ends; content after tool results opens a new step. Part
ids are ``<kind>-<seq of the part's first event>``, so a reader resuming
anywhere names them as an unbroken reader did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..sse import DONE, _check_field, json_dumps
from .base import Encoder, call_identity, unpack

__all__ = ["VercelEncoder"]

#: Our finish reasons as the AI SDK's ``finishReason`` enum.
FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
}


_NO_TEXT: Mapping[str, str] = {"content": ""}


class VercelEncoder(Encoder):
    """One reader's UI message stream: remembers the open part and step."""

    name = "vercel"
    stateful = True
    headers: ClassVar[Mapping[str, str]] = {"x-vercel-ai-ui-message-stream": "v1"}

    def __init__(self, stream_id: str, *, retry: int = 3000, **options: Any) -> None:
        super().__init__(stream_id, retry=retry, **options)
        self._id = _check_field("id", f"{stream_id}:")
        self._bid = self._id.encode()
        self._delta = b""  # '{"type":"text-delta","id":"<part>","delta":' of the open text part
        self._part: tuple[str, str] | None = None  # (text | reasoning, part id)
        self._step = False
        self._after_results = False
        self._tools: set[str] = set()
        self._by_index: dict[Any, tuple[str, str]] = {}

    def encode(self, first_seq: int, entries: Sequence[bytes]) -> bytes:
        out: list[bytes] = []
        for seq, entry in enumerate(entries, first_seq):
            text = _text_json(entry)
            part = self._part
            if (
                text is not None
                and part is not None
                and part[0] == "text"
                and not self._after_results
            ):
                # The hot path, a delta of the open text part: the stored JSON string is
                # spliced in, nothing is parsed or built.
                out.append(b"id: %s%d\ndata: %s%s}\n\n" % (self._bid, seq, self._delta, text))
                continue
            kind, data = unpack(entry)
            if kind == "end":
                out.append(DONE)
                continue
            head = f"id: {self._id}{seq}\ndata: "
            out.extend(f"{head}{json_dumps(c)}\n\n".encode() for c in self._chunks(seq, kind, data))
        return b"".join(out)

    def skip(self, first_seq: int, entries: Sequence[bytes]) -> None:
        """As :meth:`encode`, sending nothing; text needs no JSON parsed: only its kind counts."""
        for seq, entry in enumerate(entries, first_seq):
            kind, _, payload = entry.partition(b"\n")
            if kind in (b"text", b"reasoning"):
                self._chunks(seq, kind.decode(), _NO_TEXT)
            elif payload:
                self._chunks(seq, *unpack(entry))

    def _chunks(self, seq: int, kind: str, data: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if kind == "start":
            message_id = data.get("message_id")
            out.append(
                {
                    "type": "start",
                    "messageId": str(message_id if message_id is not None else self.stream_id),
                    "messageMetadata": data,
                }
            )
            out.append({"type": "start-step"})
            self._step = True
        elif kind in ("text", "reasoning"):
            self._next_step(out)
            if self._part is None or self._part[0] != kind:
                self._close_part(out)
                self._part = (kind, f"{kind}-{seq}")
                self._delta = (
                    f'{{"type":"text-delta","id":{json_dumps(self._part[1])},"delta":'.encode()
                )
                out.append({"type": f"{kind}-start", "id": self._part[1]})
            out.append({"type": f"{kind}-delta", "id": self._part[1], "delta": data["content"]})
        elif kind in ("tool_call_delta", "tool_call"):
            self._next_step(out)
            self._close_part(out)
            call_id, name = self._call(data)
            if call_id not in self._tools:
                self._tools.add(call_id)
                out.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
            if kind == "tool_call_delta":
                out.append(
                    {
                        "type": "tool-input-delta",
                        "toolCallId": call_id,
                        "inputTextDelta": data.get("arguments") or "",
                    }
                )
            else:
                out.append(
                    {
                        "type": "tool-input-available",
                        "toolCallId": call_id,
                        "toolName": name,
                        "input": data.get("arguments"),
                    }
                )
        elif kind == "tool_result":
            self._close_part(out)
            call_id = str(data["id"])
            error = data.get("error")
            if error is not None:
                message = error.get("message") if isinstance(error, Mapping) else str(error)
                out.append(
                    {"type": "tool-output-error", "toolCallId": call_id, "errorText": message}
                )
            else:
                out.append(
                    {
                        "type": "tool-output-available",
                        "toolCallId": call_id,
                        "output": data.get("result"),
                    }
                )
            self._after_results = True
        elif kind == "progress":
            out.append({"type": "data-progress", "data": data, "transient": True})
        elif kind == "done":
            self._close_part(out)
            if self._step:
                out.append({"type": "finish-step"})
                self._step = False
            reason = data.get("finish_reason")
            if reason == "cancelled":
                out.append({"type": "abort", "reason": "cancelled"})
            out.append(
                {
                    "type": "finish",
                    "finishReason": FINISH_REASONS.get(reason, "other"),
                    "messageMetadata": data,
                }
            )
        elif kind == "error":
            self._close_part(out)
            error = data.get("error") or {}
            out.append({"type": "error", "errorText": str(error.get("message") or "Error.")})
        return out

    def _call(self, data: Any) -> tuple[str, str]:
        return call_identity(self._by_index, data)

    def _close_part(self, out: list[dict[str, Any]]) -> None:
        if self._part is not None:
            out.append({"type": f"{self._part[0]}-end", "id": self._part[1]})
            self._part = None

    def _next_step(self, out: list[dict[str, Any]]) -> None:
        """Content after tool results is the model's next step."""
        if self._after_results:
            self._after_results = False
            self._close_part(out)
            if self._step:
                out.append({"type": "finish-step"})
            out.append({"type": "start-step"})
            self._step = True


_TEXT_HEAD = b'text\n{"content":'


def _text_json(entry: bytes) -> bytes | None:
    """The JSON string of a stored text event (``{"content": str}``), or ``None``."""
    if entry.startswith(_TEXT_HEAD) and entry.endswith(b'"}'):
        return entry[len(_TEXT_HEAD) : -1]
    return None
