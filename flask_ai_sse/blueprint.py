"""The ready HTTP routes, mounted at ``AI_SSE_URL_PREFIX``. Views stay thin:
parse, validate, hand over to the extension."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

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

    if ai.db is not None:
        from .persistence.routes import add_conversation_routes

        add_conversation_routes(route, ai)

    bp.record(_add_unrouted_rules)
    bp.after_request(_fix_options_allow)

    @bp.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int, list[tuple[str, str]]]:
        """``abort()`` in a view or the authorize hook, in the contract's JSON shape too;
        and an unknown path or method under the prefix (see :func:`unrouted`)."""
        code = error.code or 500
        kind = (error.name or "error").lower().replace(" ", "_")
        body = {"error": {"type": kind, "message": error.description or error.name}}
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return jsonify(body), code, headers

    return bp


#: Every method the catch-all rule takes, and the ones it probes for a 405's ``Allow``.
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_UNROUTED = "unrouted"


def _add_unrouted_rules(setup: BlueprintSetupState) -> None:
    """Routing fails before a blueprint is chosen, so a 404/405 under the prefix would
    get the app's handlers (HTML by default). A last rule under the prefix makes them
    the blueprint's JSON errors. Mounted at the root, it would take every unknown
    path of the app: then it is left out."""
    if not (setup.url_prefix or "").strip("/"):
        return
    for rule in ("", "/", "/<path:path>"):
        setup.add_url_rule(
            rule, _UNROUTED, unrouted, methods=_METHODS, provide_automatic_options=False
        )


def unrouted(path: str = "") -> Response:
    """404; or 405 with ``Allow`` when another rule takes this path with other methods."""
    allowed = _allowed_methods()
    if allowed:
        raise MethodNotAllowed(allowed)
    raise RouteNotFound()


def _allowed_methods() -> list[str]:
    """The methods that reach a real view at the request's path (not the catch-all)."""
    adapter = current_app.create_url_adapter(request)
    allowed = []
    for method in _METHODS:
        try:
            rule, _ = adapter.match(method=method, return_rule=True)  # type: ignore[union-attr]
        except HTTPException:
            continue
        if not rule.endpoint.endswith("." + _UNROUTED):
            allowed.append(method)
    return allowed


def _fix_options_allow(response: Response) -> Response:
    """Flask's automatic OPTIONS answer counts the catch-all's methods in ``Allow``."""
    if request.method == "OPTIONS" and "Allow" in response.headers:
        response.headers["Allow"] = ", ".join(_allowed_methods())
    return response
