"""Tool calls, tool results and parts in stored messages, and back. Pure code, no database.

Every message upstream is its own row: a stored message keeps its text in
``content`` and the rest in ``meta``:

* an assistant message that called tools: ``meta["tool_calls"]`` (ids, names,
  decoded arguments), its ``content`` the text said before the calls;
* a ``tool`` message: ``meta["tool_call_id"]`` and ``meta["name"]``, the result (or
  ``{"error": ...}``) as ``content``;
* a message with parts (images): ``meta["parts"]``, its text parts also in ``content``.

A stream that runs tools writes each step's call row and each result row as the
step loop produces them (see :class:`.turns.PersistObserver`), before its answer
row in reading order. :func:`replay` turns a row back into the message a provider
needs, and :func:`pair_tool_calls` drops calls that have no result and results
that have no call (a client that never answered), which every provider would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ..chunks import Message, text_of

#: The error a tool row stores when its stream ended before the tool did.
UNFINISHED = {"type": "cancelled", "message": "The stream ended before the tool finished."}


def message_meta(message: Message) -> dict[str, Any]:
    """What a message sent by a client keeps in ``meta`` beside its text."""
    meta: dict[str, Any] = {}
    if "tool_call_id" in message:
        meta["tool_call_id"] = message["tool_call_id"]
    if message.get("tool_calls"):
        meta["tool_calls"] = message["tool_calls"]
    if not isinstance(message["content"], str):
        meta["parts"] = message["content"]
    return meta


def result_content(result: Mapping[str, Any]) -> str:
    """A tool result as a ``tool`` message's content: the value's JSON (a string as it
    is), or ``{"error": ...}``, exactly as the step loop sent it upstream."""
    if "error" in result:
        return json.dumps({"error": result["error"]})
    value = result.get("result")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def call_row(text: str, calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The stored form of a step's assistant message that called ``calls``."""
    return {"role": "assistant", "content": text, "meta": {"tool_calls": list(calls)}}


def result_row(result: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    """The stored form of one tool result (``{"id", "name", "result"|"error"}``)."""
    meta: dict[str, Any] = {"tool_call_id": result["id"], "name": result.get("name")}
    if "error" in result:
        meta["error"] = result["error"]
    return {"role": "tool", "content": result_content(result), "status": status, "meta": meta}


def replay(role: str, content: str, meta: Mapping[str, Any] | None) -> list[Message]:
    """A stored message as the message it stands for upstream (none when it is empty)."""
    meta = meta or {}
    if role == "tool":
        return [
            cast(
                Message,
                {
                    "role": "tool",
                    "tool_call_id": str(meta.get("tool_call_id", "")),
                    "content": content,
                },
            )
        ]
    message: dict[str, Any] = {"role": role, "content": meta.get("parts") or content}
    if meta.get("tool_calls"):
        message["tool_calls"] = meta["tool_calls"]
    if message["content"] or "tool_calls" in message:
        return [cast(Message, message)]
    return []


def pair_tool_calls(messages: Sequence[Message]) -> list[Message]:
    """The messages with every tool call answered and every result asked for."""
    answered = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    asked: set[str] = set()
    out: list[Message] = []
    for m in messages:
        if m["role"] == "tool":
            if m.get("tool_call_id") in asked:
                out.append(m)
            continue
        calls = [c for c in m.get("tool_calls", ()) if c["id"] in answered]
        if "tool_calls" in m and len(calls) != len(m["tool_calls"]):
            m = cast(Message, {**m, "tool_calls": calls})
            if not calls:
                del m["tool_calls"]
                if not text_of(m["content"]):
                    continue
        asked.update(c["id"] for c in m.get("tool_calls", ()))
        out.append(m)
    return out


def units(messages: Sequence[Message]) -> list[list[Message]]:
    """Messages grouped so that a call and its results stay together when history is cut."""
    groups: list[list[Message]] = []
    for m in messages:
        if (
            m["role"] == "tool"
            and groups
            and (groups[-1][-1]["role"] == "tool" or groups[-1][-1].get("tool_calls"))
        ):
            groups[-1].append(m)
        elif groups and groups[-1][-1]["role"] == "tool" and m["role"] == "assistant":
            groups[-1].append(m)  # the answer that read the results
        else:
            groups.append([m])
    return groups
