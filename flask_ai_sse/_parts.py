"""Message content beyond plain text: parts (text, images) and tool messages. No Flask.

A message's ``content`` is a string or a list of parts::

    {"type": "text", "text": "What is in this picture?"}
    {"type": "image", "url": "https://example.com/cat.png"}
    {"type": "image", "data": "<base64>", "media_type": "image/png"}

Image URLs are passed to the provider as they are: the server never fetches
them, so only ``http``/``https`` URLs are accepted (no ``file:``, no ``data:``
smuggled past the byte limits). Every check here runs before anything goes
upstream; a violation is a :class:`~flask_ai_sse.errors.ValidationError`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, ValidationError

#: The image types every supported provider accepts.
MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
URL_SCHEMES = ("http", "https")
MAX_URL_CHARS = 8192
MAX_ID_CHARS = 128
#: Tool names as the providers accept them (OpenAI's rule is the strictest).
TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class PartLimits:
    """Limits on parts, from ``AI_SSE_MAX_PARTS``, ``AI_SSE_MAX_IMAGE_BYTES``, ..."""

    max_parts: int = 16
    max_image_bytes: int = 5 * 1024 * 1024
    max_total_image_bytes: int = 20 * 1024 * 1024
    media_types: frozenset[str] = frozenset(MEDIA_TYPES)
    url_schemes: frozenset[str] = frozenset(URL_SCHEMES)

    @classmethod
    def build(
        cls,
        *,
        max_parts: int,
        max_image_bytes: int,
        max_total_image_bytes: int,
        media_types: Iterable[str],
        url_schemes: Iterable[str],
    ) -> PartLimits:
        types = frozenset(media_types)
        schemes = frozenset(s.lower() for s in url_schemes)
        if not types <= set(MEDIA_TYPES):
            raise ConfigurationError(
                f"Image media types must be among {', '.join(MEDIA_TYPES)}, not {sorted(types)}."
            )
        if not schemes <= set(URL_SCHEMES):
            raise ConfigurationError(f"Image URL schemes must be http and/or https, not {schemes}.")
        return cls(max_parts, max_image_bytes, max_total_image_bytes, types, schemes)


def _bad(message: str, kind: str = "invalid_part") -> ValidationError:
    return ValidationError(message, type=kind, field="messages")


class ContentChecker:
    """Checks the parts of one request; counts image bytes over all its messages."""

    def __init__(self, limits: PartLimits, max_chars: int) -> None:
        self.limits = limits
        self.max_chars = max_chars
        self.image_bytes = 0

    def content(self, where: str, value: Any, *, allow_empty: bool) -> str | list[dict[str, Any]]:
        """A message's checked content: the string, or a list of normalized parts."""
        if isinstance(value, str):
            if not allow_empty and not value.strip():
                raise ValidationError(
                    f"'{where}' must not be empty.", type="empty_value", field="messages"
                )
            if len(value) > self.max_chars:
                raise ValidationError(
                    f"'{where}' is longer than {self.max_chars} characters.",
                    type="too_long",
                    field="messages",
                )
            return value
        if not isinstance(value, list):
            raise ValidationError(
                f"'{where}' must be a string or a list of parts.",
                type="invalid_type",
                field="messages",
            )
        if len(value) > self.limits.max_parts:
            raise _bad(f"'{where}' has more than {self.limits.max_parts} parts.", "too_many_parts")
        if not value and not allow_empty:
            raise ValidationError(
                f"'{where}' must not be empty.", type="empty_value", field="messages"
            )
        parts = [self.part(f"{where}[{i}]", p) for i, p in enumerate(value)]
        chars = sum(len(p.get("text", "")) for p in parts)
        if chars > self.max_chars:
            raise ValidationError(
                f"'{where}' is longer than {self.max_chars} characters.",
                type="too_long",
                field="messages",
            )
        return parts

    def part(self, where: str, part: Any) -> dict[str, Any]:
        if not isinstance(part, Mapping):
            raise _bad(f"'{where}' must be an object with a 'type'.")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise _bad(f"'{where}.text' must be a string.")
            return {"type": "text", "text": text}
        if kind == "image":
            return self.image(where, part)
        raise _bad(f"'{where}.type' must be 'text' or 'image'.")

    def image(self, where: str, part: Mapping[str, Any]) -> dict[str, Any]:
        url, data, media_type = part.get("url"), part.get("data"), part.get("media_type")
        if (url is None) == (data is None):
            raise _bad(f"'{where}' needs either 'url' or 'data' (with 'media_type').")
        if media_type is not None and media_type not in self.limits.media_types:
            allowed = ", ".join(sorted(self.limits.media_types))
            raise _bad(f"'{where}.media_type' must be one of {allowed}.", "invalid_media_type")
        if url is not None:
            if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
                raise _bad(f"'{where}.url' must be a URL of at most {MAX_URL_CHARS} characters.")
            split = urlsplit(url)
            if split.scheme.lower() not in self.limits.url_schemes or not split.netloc:
                schemes = "/".join(sorted(self.limits.url_schemes))
                raise _bad(f"'{where}.url' must be an absolute {schemes} URL.", "invalid_url")
            out = {"type": "image", "url": url}
            if media_type is not None:
                out["media_type"] = media_type
            return out
        if media_type is None:
            raise _bad(f"'{where}' with 'data' needs a 'media_type'.", "invalid_media_type")
        if not isinstance(data, str):
            raise _bad(f"'{where}.data' must be a base64 string.")
        # Decoded size from the text length first: no decoding of what is plainly too big.
        size = len(data) * 3 // 4
        if size > self.limits.max_image_bytes + 2:
            raise _bad(
                f"'{where}' is larger than {self.limits.max_image_bytes} bytes.", "image_too_large"
            )
        try:
            size = len(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise _bad(f"'{where}.data' is not valid base64.") from None
        if size > self.limits.max_image_bytes:
            raise _bad(
                f"'{where}' is larger than {self.limits.max_image_bytes} bytes.", "image_too_large"
            )
        self.image_bytes += size
        if self.image_bytes > self.limits.max_total_image_bytes:
            raise _bad(
                f"The images are larger than {self.limits.max_total_image_bytes} bytes together.",
                "image_too_large",
            )
        return {"type": "image", "data": data, "media_type": media_type}


def check_tool_call_id(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise ValidationError(
            f"'{where}' must be a non-empty string of at most {MAX_ID_CHARS} characters.",
            type="invalid_tool_message",
            field="messages",
        )
    return value


def check_tool_calls(where: str, value: Any) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls``: ``[{"id", "name", "arguments": object}]``."""
    if not isinstance(value, list) or not value:
        raise ValidationError(
            f"'{where}' must be a non-empty list.", type="invalid_tool_message", field="messages"
        )
    calls = []
    for i, call in enumerate(value):
        if not isinstance(call, Mapping):
            raise ValidationError(
                f"'{where}[{i}]' must be an object.", type="invalid_tool_message", field="messages"
            )
        name = call.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise ValidationError(
                f"'{where}[{i}].name' is not a valid tool name.",
                type="invalid_tool_message",
                field="messages",
            )
        arguments = call.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise ValidationError(
                f"'{where}[{i}].arguments' must be an object.",
                type="invalid_tool_message",
                field="messages",
            )
        calls.append(
            {
                "id": check_tool_call_id(f"{where}[{i}].id", call.get("id")),
                "name": name,
                "arguments": dict(arguments),
            }
        )
    return calls


def data_url(part: Mapping[str, Any]) -> str:
    """An image part as a URL: its own, or a ``data:`` URL of its bytes (OpenAI takes both)."""
    if "url" in part:
        return str(part["url"])
    return f"data:{part['media_type']};base64,{part['data']}"
