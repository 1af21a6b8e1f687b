"""Tool calls, tool results and parts in stored messages, and back. Pure code, no database.

A stored message keeps its text in ``content`` and the rest in ``meta``:

* a ``tool`` message: ``meta["tool_call_id"]``;
* a message with parts (images): ``meta["parts"]``, its text parts also in ``content``;
* an answer whose stream ran tools: ``meta["tool_turns"]``, one per step that called
  tools (``{"content", "tool_calls", "results"}``), and ``meta["tool_calls"]`` when
  its last step called tools the client runs. ``content`` is all the text the
  user saw; the last step's text is what follows the turns' text.

:func:`replay` turns a stored message back into the messages a provider needs
(assistant ``tool_calls``, then one ``tool`` message per result), and
:func:`pair_tool_calls` drops calls that have no result and results that have no
call (a stream cancelled during a tool, a client that never answered), which
every provider would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ..chunks import AnswerBuilder, Message, text_of


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


def answer_tool_meta(answer: AnswerBuilder) -> dict[str, Any]:
    """What an answer that used tools keeps in ``meta`` (nothing when it used none)."""
    meta: dict[str, Any] = {}
    if answer.turns:
        meta["tool_turns"] = answer.turns
    if answer.calls and answer.finish_reason == "tool_calls":
        meta["tool_calls"] = answer.calls
    return meta


def _result_content(result: Mapping[str, Any]) -> str:
    if "error" in result:
        return json.dumps({"error": result["error"]})
    value = result.get("result")
    return value if isinstance(value, str) else json.dumps(value, default=str)


def replay(role: str, content: str, meta: Mapping[str, Any] | None) -> list[Message]:
    """A stored message as the messages it stands for upstream."""
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
    out: list[Message] = []
    rest = content
    for turn in meta.get("tool_turns") or ():
        text = str(turn.get("content") or "")
        rest = rest[len(text) :] if rest.startswith(text) else rest
        out.append(
            cast(Message, {"role": "assistant", "content": text, "tool_calls": turn["tool_calls"]})
        )
        out += [
            cast(
                Message,
                {"role": "tool", "tool_call_id": r["id"], "content": _result_content(r)},
            )
            for r in turn.get("results") or ()
        ]
    message: dict[str, Any] = {"role": role, "content": meta.get("parts") or rest}
    if meta.get("tool_calls"):
        message["tool_calls"] = meta["tool_calls"]
    if message["content"] or "tool_calls" in message:
        out.append(cast(Message, message))
    return out


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
