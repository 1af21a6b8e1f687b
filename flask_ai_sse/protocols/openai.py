"""OpenAI Chat Completions: ``chat.completion.chunk`` events and the whole ``chat.completion``.

==================  ==========================================================
neutral event       chunk
==================  ==========================================================
``start``           ``delta: {"role": "assistant", "content": ""}``
``text``            ``delta: {"content": ...}``
``reasoning``       ``delta: {"reasoning_content": ...}`` (DeepSeek's field)
``tool_call_delta`` kept until the step ends (see below)
``tool_call``       kept until the step ends
``tool_result``     nothing; the call it answers is dropped: server-run tools are
                    the server's business
``progress``        nothing
``done``            with ``finish_reason`` ``tool_calls``: first the calls the client
                    must run, ``delta: {"tool_calls": [{"index", "id", "type",
                    "function": {"name", "arguments"}}]}`` one chunk per call, indexes
                    from 0; then ``delta: {}`` with ``finish_reason``; then, when asked
                    with ``stream_options.include_usage``, a ``choices: []`` usage chunk
``error``           ``data: {"error": {"message", "type", "param", "code"}}``
``end``             ``data: [DONE]``
==================  ==========================================================

An OpenAI client runs every call it is shown, so a call is shown only once the
stream is known to end for the client to run it (``finish_reason`` ``tool_calls``);
calls the server ran (they have a ``tool_result``) never reach the client.

The official Python SDK reads any blank line after an ``id`` as an event with
empty data and fails to parse it: so this protocol sends no ``retry`` event and
its keepalive comments end without a blank line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..sse import DONE, _check_field, json_dumps
from .base import Encoder, call_identity, unpack

__all__ = ["FINISH_REASONS", "OpenAIEncoder", "completion", "error_body"]

FINISH_REASONS: Mapping[str, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(reason: str | None) -> str:
    """OpenAI's word for ours (``cancelled`` and ``error`` end as ``stop``)."""
    return FINISH_REASONS.get(reason or "stop", "stop")


def error_body(error: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's error object from our ``{"error": {"type", "message"}}`` body."""
    inner = error.get("error") or {}
    kind = str(inner.get("type") or "error")
    return {
        "error": {
            "message": str(inner.get("message") or "Error."),
            "type": kind,
            "param": inner.get("field"),
            "code": kind,
        }
    }


def completion_id(stream_id: str) -> str:
    return f"chatcmpl-{stream_id}"


class OpenAIEncoder(Encoder):
    """One reader's chunks. Options: ``created`` (unix time, the same for every reader)
    and ``include_usage`` (``stream_options.include_usage``)."""

    name = "openai"
    stateful = True

    def __init__(
        self,
        stream_id: str,
        *,
        retry: int = 3000,
        created: int = 0,
        include_usage: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(stream_id, retry=retry, **options)
        self._id = _check_field("id", f"{stream_id}:")
        self._bid = self._id.encode()
        # A text chunk's bytes around its delta, known once the start named the model.
        self._text_head = b""
        self._text_tail = b""
        self._created = int(created)
        self._usage = bool(include_usage)
        self._model = ""
        # Calls not yet shown, in order: id -> [name, arguments text, streamed in pieces].
        self._calls: dict[str, list[Any]] = {}
        self._by_index: dict[Any, tuple[str, str]] = {}

    @property
    def prefix(self) -> bytes:
        return b""

    @property
    def keepalive(self) -> bytes:
        return b": keepalive\n"

    def encode(self, first_seq: int, entries: Sequence[bytes]) -> bytes:
        out: list[bytes] = []
        for seq, entry in enumerate(entries, first_seq):
            if self._text_head and entry.startswith(b"text\n"):
                # The hot path: the stored {"content": ...} is the delta, spliced in.
                out.append(
                    b"id: %s%d\ndata: %s%s%s"
                    % (self._bid, seq, self._text_head, entry[5:], self._text_tail)
                )
                continue
            kind, data = unpack(entry)
            if kind == "end":
                out.append(DONE)
                continue
            head = f"id: {self._id}{seq}\ndata: "
            out.extend(f"{head}{json_dumps(c)}\n\n".encode() for c in self._chunks(kind, data))
        return b"".join(out)

    def skip(self, first_seq: int, entries: Sequence[bytes]) -> None:
        """As :meth:`encode`, sending nothing: only the start (the model) and tool calls
        (their indexes) leave state, so nothing else is parsed."""
        for entry in entries:
            kind = entry.partition(b"\n")[0]
            if kind in (b"start", b"tool_call_delta", b"tool_call", b"tool_result", b"done"):
                self._chunks(*unpack(entry))

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": completion_id(self.stream_id),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        if self._usage:
            chunk["usage"] = None
        return chunk

    def _chunks(self, kind: str, data: Any) -> list[dict[str, Any]]:
        if kind == "start":
            self._model = str(data.get("model") or "")
            head, _, tail = json_dumps(self._chunk({"content": ""})).partition('{"content":""}')
            self._text_head, self._text_tail = head.encode(), f"{tail}\n\n".encode()
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "text":
            return [self._chunk({"content": data["content"]})]
        if kind == "reasoning":
            return [self._chunk({"reasoning_content": data["content"]})]
        if kind in ("tool_call_delta", "tool_call"):
            self._tool_call(kind, data)
            return []
        if kind == "tool_result":
            self._calls.pop(str(data.get("id")), None)  # the server ran it
            return []
        if kind == "done":
            reason = finish_reason(data.get("finish_reason"))
            out = self._shown_calls() if reason == "tool_calls" else []
            self._calls.clear()
            out.append(self._chunk({}, reason))
            usage = data.get("usage")
            if self._usage and usage:
                last = self._chunk({})
                last["choices"] = []
                last["usage"] = usage
                out.append(last)
            return out
        if kind == "error":
            return [error_body(data)]
        return []  # tool_result, progress

    def _tool_call(self, kind: str, data: Any) -> None:
        call_id, name = call_identity(self._by_index, data)
        call = self._calls.setdefault(call_id, [name, "", False])
        arguments = data.get("arguments")
        if kind == "tool_call_delta":
            call[1] += arguments or ""
            call[2] = True
        elif not call[2]:  # a whole call whose pieces were not streamed
            call[1] = arguments if isinstance(arguments, str) else json_dumps(arguments or {})

    def _shown_calls(self) -> list[dict[str, Any]]:
        """The calls left for the client, as OpenAI streams them (index, id, function)."""
        return [
            self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }
                    ]
                }
            )
            for index, (call_id, (name, arguments, _)) in enumerate(self._calls.items())
        ]


def completion(
    *,
    stream_id: str,
    created: int,
    model: str,
    text: str,
    finish: str | None,
    usage: Mapping[str, int] | None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    reasoning: str = "",
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    # Only calls left for the client: those the server ran are its business (as streamed).
    shown = tool_calls if finish_reason(finish) == "tool_calls" else ()
    content = text if text or not shown else None
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if shown:
        message["tool_calls"] = [
            {
                "id": str(call.get("id")),
                "type": "function",
                "function": {
                    "name": str(call.get("name")),
                    "arguments": call["arguments"]
                    if isinstance(call.get("arguments"), str)
                    else json_dumps(call.get("arguments") or {}),
                },
            }
            for call in shown
        ]
    body: dict[str, Any] = {
        "id": completion_id(stream_id),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(finish),
            }
        ],
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return body
