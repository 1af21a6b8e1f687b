"""The ready HTTP routes, mounted at ``AI_SSE_URL_PREFIX``. Views stay thin:
parse, validate, hand over to the extension."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

from ._guards import Guards, install_cors, install_cross_site_check
from ._protocol_routes import add_protocol_routes, requested_protocol
from ._request import read_json_body, requested_event_id
from ._toolrun import route_steps, route_tools
from ._validation import validate_body, validate_query
from .chunks import ChatRequest
from .engine import Observer
from .errors import NotFound

if TYPE_CHECKING:
    from .extension import AISSE

View = Callable[..., Any]


def create_blueprint(ai: AISSE, *, decorators: Sequence[View] = ()) -> Blueprint:
    """The blueprint of routes for ``ai``; ``decorators`` wrap every view (e.g. login)."""
    bp = Blueprint("ai_sse", __name__)

    def guards() -> Guards:
        return ai.state().guards

    install_cors(bp, guards)
    install_cross_site_check(bp, guards, exempt=(_UNROUTED,))

    def admitted(view: View, resumable: bool, event_source: bool) -> View:
        """``view`` behind the app's guards, which hand it the ``observers`` to start with."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return guards().admit(
                view, *args, resumable=resumable, event_source=event_source, **kwargs
            )

        return guarded

    def attaching(view: View) -> View:
        @functools.wraps(view)
        def guarded(stream_id: str) -> Any:
            return guards().attach(view, stream_id)

        return guarded

    def connecting(view: View) -> View:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return guards().connected(lambda: view(*args, **kwargs))

        return guarded

    def route(
        rule: str,
        methods: list[str],
        *,
        spends: bool = False,
        resumable: bool = False,
        attaches: bool = False,
        connects: bool = False,
        event_source: bool = False,
    ) -> Callable[[View], View]:
        """``spends``: the view starts a generation, so the rate limit and caps apply;
        ``attaches``: it follows a stream (a connection, and the rate limit unless it
        reconnects); ``connects``: it holds a connection only (a resume by other means);
        ``event_source``: ``AI_SSE_ALLOW_GET_STREAM`` applies."""

        def register(view: View) -> View:
            if spends:
                wrapped = admitted(view, resumable, event_source)
            elif attaches:
                wrapped = attaching(view)
            else:
                wrapped = connecting(view) if connects else view
            for decorator in reversed(decorators):
                wrapped = decorator(wrapped)
            bp.add_url_rule(rule, view.__name__, wrapped, methods=methods)
            return view

        return register

    def offered(chat: ChatRequest) -> ChatRequest:
        """Only the tools named in ``AI_SSE_TOOLS`` reach a route's client."""
        settings = ai.state().settings.tools
        chat.requested_tools = route_tools(chat.requested_tools, settings.names)
        chat.max_steps = route_steps(chat.max_steps, settings.max_steps)
        return chat

    @route("/stream", ["POST"], spends=True, resumable=True)
    def stream_post(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        limits = state.settings.limits
        chat = validate_body(read_json_body(limits), limits, state.provider.model)
        return ai.serve(
            offered(chat), observers=observers, state=state, protocol=requested_protocol()
        )

    @route("/stream", ["GET"], spends=True, resumable=True, event_source=True)
    def stream_get(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        chat = validate_query(request.args, state.settings.limits, state.provider.model)
        return ai.serve(
            offered(chat), observers=observers, state=state, protocol=requested_protocol()
        )

    @route("/streams/<stream_id>", ["GET"], attaches=True)
    def stream_attach(stream_id: str) -> Response:
        parsed = requested_event_id()
        after = parsed[1] if parsed is not None and parsed[0] == stream_id else 0
        return ai.attach(stream_id, after, protocol=requested_protocol())

    @route("/streams/<stream_id>/cancel", ["POST"])
    def stream_cancel(stream_id: str) -> tuple[Response, int]:
        if not ai.cancel(stream_id):
            raise NotFound("Unknown or expired stream.")
        return jsonify({"stream_id": stream_id, "cancelled": True}), 202

    @route("/ask", ["POST"], spends=True)
    def ask(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        limits = state.settings.limits
        chat = validate_body(read_json_body(limits), limits, state.provider.model)
        return jsonify(ai.complete(offered(chat), state=state).to_dict())

    @route("/metrics", ["GET"])
    def metrics() -> Response:
        """Prometheus metrics, when ``AI_SSE_METRICS_ENDPOINT`` is on (docs/observability)."""
        telemetry = ai.state().telemetry
        if not telemetry.metrics_endpoint:
            raise NotFound("Not found.")
        return telemetry.metrics_response()

    add_protocol_routes(route, ai)

    if ai._persistence is not None:
        ai._persistence.add_routes(
            route,
            store=lambda: ai.conversations,
            owner=ai.current_owner,
            limits=lambda: ai.state().settings.limits,
        )

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
