"""Input checking shared by the Python API and the HTTP routes. No Flask here.

Every failure is a :class:`~flask_ai_sse.errors.ValidationError` with a stable
``type``, raised before any upstream request or stream starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from .chunks import ROLES, Message
from .errors import PayloadTooLarge, ValidationError

MAX_MODEL_CHARS = 200
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Limits:
    """Input limits, from the ``AI_SSE_MAX_*`` keys."""

    max_body_bytes: int = 256 * 1024
    max_prompt_chars: int = 32_000
    max_messages: int = 200
    max_message_chars: int = 32_000
    max_tokens: int = 1_000_000


@dataclass
class AskParams:
    """A validated request: what to send upstream, before history is added."""

    messages: list[Message]
    system: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    conversation_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


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
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValidationError(
                f"messages[{i}] must be an object with 'role' and 'content'.",
                type="invalid_type",
                field="messages",
            )
        role = item.get("role")
        if role not in ROLES:
            raise ValidationError(
                f"messages[{i}].role must be one of {', '.join(ROLES)}.",
                type="invalid_role",
                field="messages",
            )
        content = _text(
            f"messages[{i}].content",
            item.get("content"),
            limits.max_message_chars,
            allow_empty=role == "assistant",
        )
        out.append(cast(Message, {"role": role, "content": content}))
    return out


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"'{name}' must be a number.", type="invalid_type", field=name)
    if not low <= value <= high:
        raise ValidationError(
            f"'{name}' must be between {low:g} and {high:g}.", type="out_of_range", field=name
        )
    return float(value)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"'{name}' must be an integer.", type="invalid_type", field=name)
    if not low <= value <= high:
        raise ValidationError(
            f"'{name}' must be between {low} and {high}.", type="out_of_range", field=name
        )
    return value


def validate(
    *,
    prompt: Any = None,
    messages: Any = None,
    system: Any = None,
    model: Any = None,
    temperature: Any = None,
    max_tokens: Any = None,
    conversation_id: Any = None,
    limits: Limits,
    require_prompt: bool = True,
) -> AskParams:
    """Check one request's parameters; ``prompt`` is appended as the last user message."""
    msgs = _messages(messages, limits) if messages is not None else []
    if prompt is not None:
        msgs.append({"role": "user", "content": _text("prompt", prompt, limits.max_prompt_chars)})
    if require_prompt and not any(m["role"] == "user" for m in msgs):
        raise ValidationError(
            "Send a 'prompt', or 'messages' with at least one user message.",
            type="missing_prompt",
            field="prompt",
        )
    if conversation_id is not None:
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
            conversation_id = str(conversation_id)
        conversation_id = _text("conversation_id", conversation_id, MAX_ID_CHARS)
    return AskParams(
        messages=msgs,
        system=_text("system", system, limits.max_prompt_chars) if system is not None else None,
        model=_text("model", model, MAX_MODEL_CHARS) if model is not None else None,
        temperature=_number("temperature", temperature, 0, 2) if temperature is not None else None,
        max_tokens=(
            _integer("max_tokens", max_tokens, 1, limits.max_tokens)
            if max_tokens is not None
            else None
        ),
        conversation_id=conversation_id,
    )


#: The fields a client may send to the stream and ask routes.
BODY_FIELDS = ("prompt", "messages", "system", "model", "temperature", "max_tokens",
               "conversation_id")


def validate_body(body: Any, limits: Limits) -> AskParams:
    """Check a decoded JSON body (``POST /stream`` and ``POST /ask``)."""
    if not isinstance(body, Mapping):
        raise ValidationError("The JSON body must be an object.", type="invalid_body")
    return validate(limits=limits, **{k: body.get(k) for k in BODY_FIELDS})


def validate_query(args: Mapping[str, str], limits: Limits) -> AskParams:
    """Check query parameters (``GET /stream``, for ``EventSource``): numbers arrive as text."""

    def parse(name: str, kind: type[int] | type[float]) -> int | float | None:
        raw = args.get(name)
        if raw is None or raw == "":
            return None
        try:
            return kind(raw)
        except ValueError:
            raise ValidationError(
                f"'{name}' must be a number.", type="invalid_type", field=name
            ) from None

    return validate(
        limits=limits,
        prompt=args.get("prompt"),
        system=args.get("system"),
        model=args.get("model"),
        temperature=parse("temperature", float),
        max_tokens=parse("max_tokens", int),
        conversation_id=args.get("conversation_id"),
    )


def check_body_size(length: int | None, limits: Limits) -> None:
    if length is not None and length > limits.max_body_bytes:
        raise PayloadTooLarge(f"The request body is larger than {limits.max_body_bytes} bytes.")
