"""Input checking shared by the Python API and the HTTP routes. No Flask here.

Every failure is a :class:`~flask_ai_sse.errors.ValidationError` with a stable
``type``, raised before any upstream request or stream starts. The ``type`` of
each kind of mistake (see ``docs/security.rst``):

==========================  ====================================================
``invalid_body``            the JSON body is not an object
``missing_prompt``          no ``prompt`` and no user message
``invalid_type``            a field has the wrong type (or a query number is not one)
``empty_value``             a required text is empty
``too_long``                a text is over its ``AI_SSE_MAX_*`` limit
``too_many_messages``       more than ``AI_SSE_MAX_MESSAGES`` messages
``invalid_role``            a message role other than system, user, assistant
``out_of_range``            ``temperature`` or ``max_tokens`` outside its range
``invalid_model``           a model name with characters no provider uses
``model_not_allowed``       a model outside ``AI_SSE_ALLOWED_MODELS`` (HTTP routes)
``duplicate_parameter``     a query parameter given twice
``invalid_part``            a content part that is not a text or image part
``too_many_parts``          more parts in a message than ``AI_SSE_MAX_PARTS``
``invalid_media_type``      an image type outside ``AI_SSE_IMAGE_MEDIA_TYPES``
``invalid_url``             an image URL that is not http(s) (``AI_SSE_IMAGE_URL_SCHEMES``)
``image_too_large``         over ``AI_SSE_MAX_IMAGE_BYTES`` or ``AI_SSE_MAX_IMAGES_BYTES``
``invalid_tool_message``    a ``tool`` message or ``tool_calls`` of the wrong shape
``invalid_tools``           ``tools``, ``tool_choice`` or ``schema`` of the wrong shape
==========================  ====================================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from . import constants as C
from ._parts import TOOL_NAME, ContentChecker, PartLimits, check_tool_call_id, check_tool_calls
from .chunks import ROLES, ChatRequest, Message
from .errors import ConfigurationError, ValidationError

MAX_MODEL_CHARS = 200
MAX_ID_CHARS = 128
MAX_STEPS = 1000
#: What model names look like across providers (``gpt-4o``, ``models/gemini-1.5-pro``,
#: ``meta-llama/Llama-3-70b``, ``llama3:8b``, ``claude@20240229``). Anything else is
#: refused: a model name ends up in URL paths (Gemini) and in logs.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")
_QUERY_INT = re.compile(r"-?[0-9]{1,12}")
_QUERY_FLOAT = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,12})?([eE][-+]?[0-9]{1,3})?")
#: ``AI_SSE_ALLOWED_MODELS`` value that lets clients name any model.
ANY_MODEL = "*"


@dataclass(frozen=True)
class Limits:
    """Input limits, from the ``AI_SSE_MAX_*`` keys and ``AI_SSE_ALLOWED_MODELS``.

    ``allowed_models`` names the models a client of the HTTP routes may ask for
    besides the provider's own (``None``: any). The Python API is the app's own
    code and is not restricted. The defaults are those of ``constants.DEFAULTS``.
    """

    max_body_bytes: int = C.DEFAULTS[C.MAX_BODY_BYTES]
    max_prompt_chars: int = C.DEFAULTS[C.MAX_PROMPT_CHARS]
    max_messages: int = C.DEFAULTS[C.MAX_MESSAGES]
    max_message_chars: int = C.DEFAULTS[C.MAX_MESSAGE_CHARS]
    max_tokens: int = C.DEFAULTS[C.MAX_TOKENS_LIMIT]
    allowed_models: frozenset[str] | None = frozenset()
    parts: PartLimits = field(default_factory=PartLimits)


def allowed_model_names(value: str | Iterable[str] | None) -> frozenset[str] | None:
    """``AI_SSE_ALLOWED_MODELS`` checked: ``None`` means any model may be named.

    Unset means none but the provider's own model: a client that picks the model
    picks what the app pays, so choosing is opt-in. ``"*"`` allows any name.
    """
    if value is None:
        return frozenset()
    names = [value] if isinstance(value, str) else list(value)
    if ANY_MODEL in names:
        return None
    for name in names:
        if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
            raise ConfigurationError(f"{C.ALLOWED_MODELS} has an invalid model name: {name!r}.")
    return frozenset(names)


def _text(name: str, value: Any, limit: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be a string.", type="invalid_type", field=name)
    if not allow_empty and not value.strip():
        raise ValidationError(f"'{name}' must not be empty.", type="empty_value", field=name)
    if len(value) > limit:
        raise ValidationError(
            f"'{name}' is longer than {limit} characters.", type="too_long", field=name
        )
    return value


def _messages(value: Any, limits: Limits) -> list[Message]:
    if not isinstance(value, list):
        raise ValidationError("'messages' must be a list.", type="invalid_type", field="messages")
    if len(value) > limits.max_messages:
        raise ValidationError(
            f"'messages' has more than {limits.max_messages} items.",
            type="too_many_messages",
            field="messages",
        )
    out: list[Message] = []
    checker = ContentChecker(limits.parts, limits.max_message_chars)
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValidationError(
                f"messages[{i}] must be an object with 'role' and 'content'.",
                type="invalid_type",
                field="messages",
            )
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise ValidationError(
                f"messages[{i}].role must be one of {', '.join(ROLES)}.",
                type="invalid_role",
                field="messages",
            )
        content = item.get("content")
        calls = item.get("tool_calls") if role == "assistant" else None
        if calls is not None and content is None:
            content = ""
        message: dict[str, Any] = {
            "role": role,
            "content": checker.content(
                f"messages[{i}].content", content, allow_empty=role in ("assistant", "tool")
            ),
        }
        if calls is not None:
            message["tool_calls"] = check_tool_calls(f"messages[{i}].tool_calls", calls)
        if role == "tool":
            message["tool_call_id"] = check_tool_call_id(
                f"messages[{i}].tool_call_id", item.get("tool_call_id")
            )
        out.append(cast(Message, message))
    return out


def _tools(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and TOOL_NAME.fullmatch(v) for v in value
    ):
        raise ValidationError(
            "'tools' must be a list of tool names.", type="invalid_tools", field="tools"
        )
    return list(value)


def _tool_choice(value: Any) -> str:
    if not isinstance(value, str) or not (
        value in ("auto", "none", "required") or TOOL_NAME.fullmatch(value)
    ):
        raise ValidationError(
            "'tool_choice' must be 'auto', 'none', 'required' or a tool name.",
            type="invalid_tools",
            field="tool_choice",
        )
    return value


def _schema(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(
            "'schema' must be a JSON Schema object.", type="invalid_tools", field="schema"
        )
    return dict(value)


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"'{name}' must be a number.", type="invalid_type", field=name)
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"'{name}' must be a finite number.", type="invalid_type", field=name)
    if not low <= number <= high:
        raise ValidationError(
            f"'{name}' must be between {low:g} and {high:g}.", type="out_of_range", field=name
        )
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"'{name}' must be an integer.", type="invalid_type", field=name)
    if not low <= value <= high:
        raise ValidationError(
            f"'{name}' must be between {low} and {high}.", type="out_of_range", field=name
        )
    return value


def _model(value: Any, allowed: frozenset[str] | None, default: str, *, restrict: bool) -> str:
    name = _text("model", value, MAX_MODEL_CHARS)
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValidationError(
            "'model' is not a valid model name.", type="invalid_model", field="model"
        )
    if restrict and allowed is not None and name != default and name not in allowed:
        names = allowed | {default}
        listed = ", ".join(sorted(names)) if len(names) <= 10 else "see the app's settings"
        raise ValidationError(
            f"This model may not be used here (allowed: {listed}).",
            type="model_not_allowed",
            field="model",
        )
    return name


def validate(
    *,
    prompt: Any = None,
    messages: Any = None,
    system: Any = None,
    model: Any = None,
    temperature: Any = None,
    max_tokens: Any = None,
    conversation_id: Any = None,
    tools: Any = None,
    tool_choice: Any = None,
    schema: Any = None,
    max_steps: Any = None,
    limits: Limits,
    default_model: str,
    options: dict[str, Any] | None = None,
    require_prompt: bool = True,
    restrict_model: bool = False,
) -> ChatRequest:
    """Check one request's parameters into the request sent upstream.

    ``prompt`` is appended as the last user message; without ``model`` the
    request names ``default_model`` (the provider's). ``restrict_model`` applies
    ``limits.allowed_models``: the HTTP routes set it, since there the model
    comes from a client.
    """
    msgs = _messages(messages, limits) if messages is not None else []
    if prompt is not None:
        msgs.append({"role": "user", "content": _text("prompt", prompt, limits.max_prompt_chars)})
    # A turn that only brings a client tool's results (role tool) continues the last one.
    if require_prompt and not any(m["role"] in ("user", "tool") for m in msgs):
        raise ValidationError(
            "Send a 'prompt', or 'messages' with at least one user (or tool) message.",
            type="missing_prompt",
            field="prompt",
        )
    if conversation_id is not None:
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
            conversation_id = str(conversation_id)
        conversation_id = _text("conversation_id", conversation_id, MAX_ID_CHARS)
    return ChatRequest(
        messages=msgs,
        system=_text("system", system, limits.max_prompt_chars) if system is not None else None,
        model=(
            _model(model, limits.allowed_models, default_model, restrict=restrict_model)
            if model is not None
            else default_model
        ),
        temperature=_number("temperature", temperature, 0, 2) if temperature is not None else None,
        max_tokens=(
            _integer("max_tokens", max_tokens, 1, limits.max_tokens)
            if max_tokens is not None
            else None
        ),
        conversation_id=conversation_id,
        options=dict(options or {}),
        requested_tools=_tools(tools) if tools is not None else None,
        tool_choice=_tool_choice(tool_choice) if tool_choice is not None else None,
        schema=_schema(schema) if schema is not None else None,
        # The routes bound it by AI_SSE_MAX_STEPS (flask_ai_sse._toolrun.route_steps).
        max_steps=_integer("max_steps", max_steps, 1, MAX_STEPS) if max_steps is not None else None,
    )


#: The fields a client may send to the stream and ask routes; others are ignored.
BODY_FIELDS = (
    "prompt",
    "messages",
    "system",
    "model",
    "temperature",
    "max_tokens",
    "conversation_id",
    "tools",
    "tool_choice",
    "schema",
    "max_steps",
)
#: The query parameters of ``GET /stream`` (``EventSource`` cannot send a body).
QUERY_FIELDS = (
    "prompt",
    "system",
    "model",
    "temperature",
    "max_tokens",
    "conversation_id",
    "tools",
    "max_steps",
)


def validate_body(body: Any, limits: Limits, default_model: str) -> ChatRequest:
    """Check a decoded JSON body (``POST /stream`` and ``POST /ask``)."""
    if not isinstance(body, Mapping):
        raise ValidationError("The JSON body must be an object.", type="invalid_body")
    fields: dict[str, Any] = {k: body.get(k) for k in BODY_FIELDS}
    return validate(limits=limits, default_model=default_model, restrict_model=True, **fields)


def _query_number(name: str, raw: str, pattern: re.Pattern[str]) -> str:
    """Numbers in a query are strict decimal text: no ``nan``, ``1_000``, spaces or signs."""
    if not pattern.fullmatch(raw):
        raise ValidationError(f"'{name}' must be a number.", type="invalid_type", field=name)
    return raw


def validate_query(args: Any, limits: Limits, default_model: str) -> ChatRequest:
    """Check query parameters (``GET /stream``, for ``EventSource``): numbers arrive as text.

    ``args`` is a mapping, or a multi-dict (werkzeug's ``request.args``), where a
    parameter given twice is refused rather than silently picked one way.
    """
    values: dict[str, str | None] = {}
    for name in QUERY_FIELDS:
        given = args.getlist(name) if hasattr(args, "getlist") else [args.get(name)]
        given = [v for v in given if v is not None]
        if len(given) > 1:
            raise ValidationError(
                f"'{name}' is given more than once.", type="duplicate_parameter", field=name
            )
        values[name] = given[0] if given else None
    temperature, max_tokens = values["temperature"], values["max_tokens"]
    tools, max_steps = values["tools"], values["max_steps"]
    return validate(
        limits=limits,
        default_model=default_model,
        restrict_model=True,
        prompt=values["prompt"],
        system=values["system"],
        model=values["model"],
        temperature=float(_query_number("temperature", temperature, _QUERY_FLOAT))
        if temperature
        else None,
        max_tokens=int(_query_number("max_tokens", max_tokens, _QUERY_INT)) if max_tokens else None,
        conversation_id=values["conversation_id"],
        # Comma-separated names; an empty value offers none.
        tools=[name for name in tools.split(",") if name] if tools is not None else None,
        max_steps=int(_query_number("max_steps", max_steps, _QUERY_INT)) if max_steps else None,
    )
