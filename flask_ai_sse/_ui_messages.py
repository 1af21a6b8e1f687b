"""The AI SDK's UIMessages (what ``useChat`` sends) as our messages. No Flask.

A user message's ``text`` parts are its text; its ``file`` parts with an image
``mediaType`` are image parts (a ``data:`` URL or an http(s) URL, under the same
limits as every route). An assistant message is split at its ``step-start``
parts: each step becomes an assistant message (its text, and ``tool_calls`` for
its tool parts) followed by one ``tool`` message per call that has an outcome:
``output-available`` (the output; a client's ``addToolResult`` too),
``output-error`` or ``output-denied`` (an error the model sees). A call without
an outcome (still streaming, awaiting approval, or never answered) is left out:
a provider refuses a call without its result. Reasoning, sources and data parts
are the UI's own and are skipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import ValidationError

__all__ = ["image_from_url", "ui_messages"]

_DATA_URL = re.compile(r"data:(?P<type>[a-z]+/[a-z0-9.+-]+);base64,(?P<data>.*)", re.I | re.S)
_OUTCOMES = ("output-available", "output-error", "output-denied")


def _bad(message: str, kind: str = "invalid_type") -> ValidationError:
    return ValidationError(message, type=kind, field="messages")


def image_from_url(url: Any, where: str) -> dict[str, Any]:
    """An image given as a URL (OpenAI's ``image_url``, the AI SDK's ``file`` part) as our
    image part: a ``data:`` URL becomes base64 data; the part checker applies the limits."""
    if not isinstance(url, str):
        raise _bad(f"'{where}' needs an image URL.", "invalid_part")
    if url[:5].lower() != "data:":
        return {"type": "image", "url": url}
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _bad(f"'{where}' is a data URL that is not base64.", "invalid_url")
    return {"type": "image", "data": match["data"], "media_type": match["type"].lower()}


def _user_parts(parts: list[Any], where: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "text": part.get("text")})
        elif kind == "file":
            media_type = part.get("mediaType")
            if not isinstance(media_type, str) or not media_type.startswith("image/"):
                raise _bad(
                    f"'{where}[{i}]': only image files are supported.", "unsupported_content"
                )
            image = image_from_url(part.get("url"), f"{where}[{i}].url")
            if "url" in image:
                image["media_type"] = media_type
            out.append(image)
    return out


def _tool_part(part: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str] | None:
    """``(call, tool message content)`` of a tool part with an outcome, else ``None``."""
    kind = str(part.get("type"))
    name = part.get("toolName") if kind == "dynamic-tool" else kind[len("tool-") :]
    state = part.get("state")
    if state not in _OUTCOMES:
        return None
    arguments = part.get("input")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise _bad(f"'{where}.input' must be an object.", "invalid_tool_message")
    call = {"id": part.get("toolCallId"), "name": name, "arguments": dict(arguments)}
    if state == "output-available":
        output = part.get("output")
        content = output if isinstance(output, str) else json.dumps(output, default=str)
    elif state == "output-error":
        content = json.dumps({"error": str(part.get("errorText") or "The tool failed.")})
    else:
        content = json.dumps({"error": "The user denied this call."})
    return call, content


def _assistant(parts: list[Any], where: str) -> list[dict[str, Any]]:
    """One assistant message per step, each followed by its calls' results."""
    steps: list[list[tuple[int, Mapping[str, Any]]]] = [[]]
    for i, part in enumerate(parts):
        if part.get("type") == "step-start":
            steps.append([])
        else:
            steps[-1].append((i, part))
    out: list[dict[str, Any]] = []
    for step in steps:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        for i, part in step:
            kind = str(part.get("type"))
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind.startswith("tool-") or kind == "dynamic-tool":
                done = _tool_part(part, f"{where}[{i}]")
                if done is not None:
                    calls.append(done[0])
                    results.append(
                        {"role": "tool", "tool_call_id": done[0]["id"], "content": done[1]}
                    )
        if not texts and not calls:
            continue
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if calls:
            message["tool_calls"] = calls
        out += [message, *results]
    return out


def ui_message(message: Any, index: int) -> list[dict[str, Any]]:
    """One UIMessage as zero or more of our messages (unchecked: ``validate()`` checks)."""
    where = f"messages[{index}].parts"
    if not isinstance(message, Mapping):
        raise _bad(f"messages[{index}] must be a UIMessage object.")
    role = message.get("role")
    parts = message.get("parts")
    if parts is None and isinstance(message.get("content"), str):  # older AI SDK messages
        return [{"role": role, "content": message["content"]}]
    if not isinstance(parts, list):
        raise _bad(f"'{where}' must be a list.")
    if not all(isinstance(p, Mapping) for p in parts):
        raise _bad(f"'{where}' must hold objects.")
    if role == "assistant":
        return _assistant(parts, where)
    if role == "user":
        content: Any = _user_parts(parts, where)
        if all(p["type"] == "text" for p in content):
            content = "".join(str(p["text"]) if isinstance(p["text"], str) else "" for p in content)
            if not all(isinstance(p.get("text"), str) for p in parts if p.get("type") == "text"):
                raise _bad(f"'{where}' has a text part without text.")
        return [{"role": "user", "content": content}]
    texts = [p.get("text") for p in parts if p.get("type") == "text"]
    if not all(isinstance(t, str) for t in texts):
        raise _bad(f"'{where}' has a text part without text.")
    return [{"role": role, "content": "".join(texts)}]


def ui_messages(messages: list[Any], limit: int) -> list[list[dict[str, Any]]]:
    """Each UIMessage's messages (at most ``limit + 1`` UIMessages are read)."""
    return [ui_message(m, i) for i, m in enumerate(messages[: limit + 1])]
