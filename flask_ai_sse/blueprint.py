"""The ready HTTP routes, mounted at ``AI_SSE_URL_PREFIX``. Views stay thin:
parse, validate, hand over to the extension."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .context import requested_event_id
from .errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationError
from .guards import guard_view, install_cors
from .validation import Limits, validate_body, validate_query

if TYPE_CHECKING:
    from .extension import AISSE

View = Callable[..., Any]


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


def create_blueprint(ai: AISSE, *, decorators: Sequence[View] = ()) -> Blueprint:
    """The blueprint of routes for ``ai``; ``decorators`` wrap every view (e.g. login)."""
    bp = Blueprint("ai_sse", __name__)
    install_cors(ai, bp)

    def route(
        rule: str, methods: list[str], *, spends: bool = False, resumable: bool = False
    ) -> Callable[[View], View]:
        """``spends``: the view starts a generation, so the rate limit and cap apply."""

        def register(view: View) -> View:
            wrapped = guard_view(ai, view, resumable=resumable) if spends else view
            for decorator in reversed(decorators):
                wrapped = decorator(wrapped)
            bp.add_url_rule(rule, view.__name__, wrapped, methods=methods)
            return view

        return register

    @route("/stream", ["POST"], spends=True, resumable=True)
    def stream_post() -> Response:
        limits = ai.state().limits
        return ai.serve(validate_body(read_json_body(limits), limits))

    @route("/stream", ["GET"], spends=True, resumable=True)
    def stream_get() -> Response:
        return ai.serve(validate_query(request.args, ai.state().limits))

    @route("/streams/<stream_id>", ["GET"])
    def stream_attach(stream_id: str) -> Response:
        parsed = requested_event_id()
        after = parsed[1] if parsed is not None and parsed[0] == stream_id else 0
        return ai.attach(stream_id, after)

    @route("/streams/<stream_id>/cancel", ["POST"])
    def stream_cancel(stream_id: str) -> tuple[Response, int]:
        if not ai.cancel(stream_id):
            raise NotFound("Unknown or expired stream.")
        return jsonify({"stream_id": stream_id, "cancelled": True}), 202

    @route("/ask", ["POST"], spends=True)
    def ask() -> Response:
        limits = ai.state().limits
        return jsonify(ai.complete(validate_body(read_json_body(limits), limits)).to_dict())

    @route("/metrics", ["GET"])
    def metrics() -> Response:
        """Prometheus metrics, when ``AI_SSE_METRICS_ENDPOINT`` is on (docs/observability)."""
        telemetry = ai.state().telemetry
        if not telemetry.metrics_endpoint:
            raise NotFound("Not found.")
        return telemetry.metrics_response()

    if ai.db is not None:
        from .persistence.routes import add_conversation_routes

        add_conversation_routes(route, ai)

    @bp.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        """``abort()`` in a view or the authorize hook, in the contract's JSON shape too.

        (Routing's own 404/405 happen before a blueprint is chosen: those stay the app's.)
        """
        code = error.code or 500
        kind = (error.name or "error").lower().replace(" ", "_")
        body = {"error": {"type": kind, "message": error.description or error.name}}
        return jsonify(body), code

    return bp
