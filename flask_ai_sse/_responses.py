"""Building responses: event streams with the contract's headers, and JSON errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask, Response, current_app, has_request_context, jsonify
from flask import copy_current_request_context as _copy_request_context

from . import constants as C
from .engine import EngineSettings
from .engine.custom import CustomStream
from .engine.reader import StreamReader
from .errors import AISSEError
from .sse import encode, encode_comment

logger = logging.getLogger("flask_ai_sse")

#: The headers of every event-stream response (docs/wire.rst). No hop-by-hop ones.
SSE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"


def sse_response(body: Iterable[bytes], *, headers: Mapping[str, str] | None = None) -> Response:
    """Wrap an iterable of encoded bytes in a response with the event-stream headers."""
    response = Response(body, content_type=SSE_CONTENT_TYPE, direct_passthrough=True)
    response.headers.update(SSE_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def custom_stream_response(
    iterable: Iterable[Any],
    settings: EngineSettings,
    *,
    headers: Mapping[str, str] | None,
    retry: int | None,
    keepalive: float | None,
    keepalive_text: str,
    flush_interval: float | None,
) -> Response:
    """A view's own events (see :mod:`flask_ai_sse.engine.custom`), run with a copy of
    the request context (or the app context) and served like the built-in streams."""
    wrap: Callable[[Callable[[], None]], Callable[[], None]]
    if has_request_context():
        wrap = _copy_request_context
    else:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        wrap = functools.partial(_with_app_context, app)
    custom = CustomStream(iterable, wrap=wrap)
    custom.start()
    reader = StreamReader(
        custom.log.read,
        0,
        prefix=encode(retry=settings.retry if retry is None else retry),
        keepalive=settings.keepalive if keepalive is None else keepalive,
        keepalive_bytes=encode_comment(keepalive_text),
        flush_interval=settings.flush_interval if flush_interval is None else flush_interval,
        on_close=custom.stop,
    )
    return sse_response(reader, headers=headers)


def _with_app_context(app: Flask, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            fn()

    return run


def render_error(error: AISSEError) -> Response:
    """The JSON error body of docs/wire.rst, with the error's status and headers."""
    if error.status >= 500:
        logger.warning("%s: %s", type(error).__name__, error.message)
    if error.status == 429:  # counted by the metrics (rate limit, stream cap, budget)
        state = current_app.extensions.get(C.EXTENSION_NAME)
        if state is not None:
            state.telemetry.refused(error)
    response = jsonify(error.to_dict())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response
