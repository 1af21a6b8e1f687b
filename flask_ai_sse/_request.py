"""What the current request carries, read in one place: its JSON body, the event id
it resumes from, and who it counts against."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from ._validation import Limits
from .engine.protocol import parse_event_id
from .errors import PayloadTooLarge, UnsupportedMediaType, ValidationError

T = TypeVar("T")


def read_json_body(limits: Limits) -> Any:
    """The request's JSON body, or a 4xx error: too large, not JSON, empty, malformed."""
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        raise PayloadTooLarge(f"The request body is larger than {limits.max_body_bytes} bytes.")
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    raw = request.stream.read(limits.max_body_bytes + 1)
    if len(raw) > limits.max_body_bytes:
        raise PayloadTooLarge(f"The request body is larger than {limits.max_body_bytes} bytes.")
    if not raw.strip():
        raise ValidationError("The request body is empty; send a JSON object.", type="missing_body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ValidationError("The request body is not valid JSON.", type="invalid_json") from None


def requested_event_id() -> tuple[str, int] | None:
    """``(stream_id, seq)`` from the ``Last-Event-ID`` header (as a browser sends it) or the
    ``last_event_id`` query parameter (for clients that cannot set headers); read once."""
    return once_per_request(
        "flask_ai_sse.event_id",
        lambda: parse_event_id(
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        ),
    )


def once_per_request(name: str, compute: Callable[[], T]) -> T:
    """``compute()``, remembered for the rest of the request (e.g. a database lookup)."""
    environ = request.environ
    if name not in environ:
        environ[name] = compute()
    return environ[name]  # type: ignore[no-any-return]


def client_key(owner: str | None) -> str:
    """Who a request counts against: its owner (``@ai.authorize``), else the client address.

    Behind a proxy, apply werkzeug's ``ProxyFix`` so the address is the client's.
    """
    return f"owner:{owner}" if owner is not None else f"addr:{request.remote_addr or '-'}"
