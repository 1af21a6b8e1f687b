"""What the current request asks of the streams, read in one place."""

from __future__ import annotations

from flask import request

from .engine.protocol import parse_event_id


def requested_event_id() -> tuple[str, int] | None:
    """``(stream_id, seq)`` from the request's ``Last-Event-ID`` header (as a browser
    sends it) or ``last_event_id`` query parameter (for clients that cannot set headers)."""
    return parse_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
