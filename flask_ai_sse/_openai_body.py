"""A Chat Completions request body as our parameters. No Flask.

Messages keep their parts (``text``; ``image_url`` with an http(s) URL or a
``data:`` base64 URL becomes an image part, under the same limits as every
route), assistant ``tool_calls`` (arguments as a JSON string) and ``tool``
messages. ``tools`` are *client* tools (definitions without a function: the
stream ends with ``finish_reason`` ``tool_calls`` for the client to run them);
the server's own tools, those named in ``AI_SSE_TOOLS``, are offered beside them
and run inside the call, unseen by the client. A client definition cannot take a
server tool's name, so nothing a client sends makes the server run a function.

Every field is either used, accepted as harmless (``user``, ``metadata``, ...)
or refused with a 400: a client never believes a setting applied when it did not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._parts import TOOL_NAME
from ._ui_messages import image_from_url
from ._validation import Limits, validate
from .chunks import ChatRequest
from .errors import ValidationError

__all__ = ["completion_params"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
#: Fields used below.
_USED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "tools",
        "tool_choice",
        "response_format",
        "n",
        "parallel_tool_calls",
        "store",
    }
)
#: Fields that change nothing about the answer: accepted and not used.
_HARMLESS = frozenset({"user", "metadata", "safety_identifier", "prompt_cache_key"})


def _bad(message: str, field: str, kind: str = "invalid_type") -> ValidationError:
    return ValidationError(message, type=kind, field=field)


def _text_of(content: Any, where: str, allowed: tuple[str, ...] = ("text",)) -> str:
    """Content that may only be text: a string, or text (and refusal) parts joined."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise _bad(f"'{where}' must be a string or a list of parts.", "messages")
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in allowed:
            raise _bad(f"'{where}' may only hold text parts.", "messages", "unsupported_content")
        value = part.get(kind)
        if not isinstance(value, str):
            raise _bad(f"'{where}' has a {kind} part without {kind}.", "messages")
        texts.append(value)
    return "".join(texts)


def _image(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    return image_from_url(image.get("url") if isinstance(image, Mapping) else None, where)


def _user_content(content: Any, where: str) -> Any:
    if not isinstance(content, list):
        return content  # a string, or a wrong type that validate() names
    parts: list[Any] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text")})
        elif kind == "image_url":
            parts.append(_image(part, f"{where}[{i}]"))
        else:
            raise _bad(
                f"'{where}[{i}]': only text and image_url parts are supported.",
                "messages",
                "unsupported_content",
            )
    return parts


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI's ``tool_calls`` (arguments: JSON text) as ours (arguments: an object)."""
    if not isinstance(calls, list):
        raise _bad(f"'{where}' must be a list.", "messages", "invalid_tool_message")
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or call.get("type", "function") != "function":
            raise _bad(
                f"'{where}[{i}]' must be a function call.",
                "messages",
                "invalid_tool_message",
            )
        arguments = function.get("arguments") or "{}"
        try:
            decoded = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            raise _bad(
                f"'{where}[{i}].function.arguments' must be a JSON object as text.",
                "messages",
                "invalid_tool_message",
            )
        out.append({"id": call.get("id"), "name": function.get("name"), "arguments": decoded})
    return out


def _message(message: Any, i: int) -> dict[str, Any]:
    where = f"messages[{i}]"
    if not isinstance(message, Mapping):
        raise _bad(f"'{where}' must be an object.", "messages")
    role = message.get("role")
    content = message.get("content")
    if role == "tool":
        return {
            "role": "tool",
            "tool_call_id": message.get("tool_call_id"),
            "content": _text_of(content, f"{where}.content"),
        }
    if role == "assistant":
        out: dict[str, Any] = {
            "role": "assistant",
            "content": _text_of(content, f"{where}.content", ("text", "refusal")),
        }
        if message.get("tool_calls"):
            out["tool_calls"] = _tool_calls(message["tool_calls"], f"{where}.tool_calls")
        return out
    if role in ("system", "developer"):
        return {"role": "system", "content": _text_of(content, f"{where}.content")}
    if role == "user":
        return {"role": "user", "content": _user_content(content, f"{where}.content")}
    return {"role": role, "content": content}  # validate() refuses the role


def _client_tools(tools: Any, server: Sequence[str]) -> list[dict[str, Any]]:
    """``tools`` as client tool dicts (no function), never shadowing a server tool."""
    if not isinstance(tools, list):
        raise _bad("'tools' must be a list.", "tools", "invalid_tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type") != "function":
            raise _bad(f"'tools[{i}]' must be a function tool.", "tools", "invalid_tools")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise _bad(f"'tools[{i}].function.name' is not a valid name.", "tools", "invalid_tools")
        if name in server or any(t["name"] == name for t in out):
            raise _bad(
                f"'tools[{i}]': the name {name!r} is taken (given twice, or a server tool).",
                "tools",
                "invalid_tools",
            )
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        description = function.get("description") or ""
        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise _bad(
                f"'tools[{i}].function.parameters' must be an object schema.",
                "tools",
                "invalid_tools",
            )
        if not isinstance(description, str):
            raise _bad(f"'tools[{i}].function.description' must be text.", "tools", "invalid_tools")
        out.append({"name": name, "description": description, "parameters": dict(parameters)})
    return out


def _tool_choice(choice: Any) -> str | None:
    if choice is None or isinstance(choice, str):
        return choice  # validate() checks the word
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if not isinstance(function, Mapping) or choice.get("type") != "function":
        raise _bad(
            "'tool_choice' must be 'auto', 'none', 'required' or a function.",
            "tool_choice",
            "invalid_tools",
        )
    return function.get("name")


def _schema(response_format: Any) -> dict[str, Any] | None:
    """``response_format`` as our ``schema``: ``json_schema`` only (see the module doc)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _bad(
                "'response_format.json_schema.schema' must be a JSON Schema object.",
                "response_format",
                "invalid_tools",
            )
        return dict(schema)
    if kind == "json_object":
        raise _bad(
            "'response_format' json_object is not supported: give a json_schema "
            "(every provider supports that natively).",
            "response_format",
            "unsupported_parameter",
        )
    raise _bad("'response_format.type' is not a known type.", "response_format")


def _unsupported(body: Mapping[str, Any]) -> None:
    """A 400 for a field we would otherwise ignore (or a value we cannot honour)."""
    for name, value in body.items():
        if name in _USED or name in _HARMLESS or value is None:
            continue
        raise _bad(f"'{name}' is not supported here.", name, "unsupported_parameter")
    if body.get("n") not in (None, 1):
        raise _bad("Only 'n': 1 is supported.", "n", "out_of_range")
    if body.get("parallel_tool_calls") is False:
        raise _bad("'parallel_tool_calls': false is not supported.", "parallel_tool_calls")
    if body.get("store"):
        raise _bad("'store': true is not supported.", "store", "unsupported_parameter")


def completion_params(
    body: Any, limits: Limits, default_model: str, server_tools: Sequence[str]
) -> tuple[ChatRequest, bool, bool]:
    """``(parameters, stream, include_usage)`` from a Chat Completions request body.

    ``server_tools``: the names in ``AI_SSE_TOOLS``, offered on every request.
    """
    if not isinstance(body, Mapping):
        raise ValidationError("The JSON body must be an object.", type="invalid_body")
    _unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _bad("'messages' must be a list.", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, Mapping):
        raise _bad("'stream_options' must be an object.", "stream_options")
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    client = _client_tools(body["tools"], server_tools) if body.get("tools") else []
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None and not (client or server_tools):
        raise _bad("'tool_choice' needs 'tools'.", "tool_choice", "invalid_tools")
    params = validate(
        messages=[_message(m, i) for i, m in enumerate(messages[: limits.max_messages + 1])],
        model=body.get("model"),
        temperature=body.get("temperature"),
        max_tokens=max_tokens,
        tool_choice=choice,
        schema=_schema(body.get("response_format")),
        limits=limits,
        default_model=default_model,
        restrict_model=True,
    )
    params.requested_tools = [*server_tools, *client]
    return params, stream, bool(options.get("include_usage"))
