"""The ready HTTP routes, mounted at ``AI_SSE_URL_PREFIX``. Views stay thin:
parse, validate, hand over to the extension."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ._guards import Guards, install_cors
from ._protocol_routes import add_protocol_routes, requested_protocol
from ._request import read_json_body, requested_event_id
from ._validation import validate_body, validate_query
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

    def admitted(view: View, resumable: bool) -> View:
        """``view`` behind the app's guards, which hand it the ``observers`` to start with."""

        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return guards().admit(view, *args, resumable=resumable, **kwargs)

        return guarded

    def route(
        rule: str, methods: list[str], *, spends: bool = False, resumable: bool = False
    ) -> Callable[[View], View]:
        """``spends``: the view starts a generation, so the rate limit and cap apply."""

        def register(view: View) -> View:
            wrapped = admitted(view, resumable) if spends else view
            for decorator in reversed(decorators):
                wrapped = decorator(wrapped)
            bp.add_url_rule(rule, view.__name__, wrapped, methods=methods)
            return view

        return register

    @route("/stream", ["POST"], spends=True, resumable=True)
    def stream_post(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        limits = state.settings.limits
        chat = validate_body(read_json_body(limits), limits, state.provider.model)
        return ai.serve(chat, observers=observers, state=state, protocol=requested_protocol())

    @route("/stream", ["GET"], spends=True, resumable=True)
    def stream_get(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        chat = validate_query(request.args, state.settings.limits, state.provider.model)
        return ai.serve(chat, observers=observers, state=state, protocol=requested_protocol())

    @route("/streams/<stream_id>", ["GET"])
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
        return jsonify(ai.complete(chat, state=state).to_dict())

    add_protocol_routes(route, ai)

    if ai._persistence is not None:
        ai._persistence.add_routes(
            route,
            store=lambda: ai.conversations,
            owner=ai.current_owner,
            limits=lambda: ai.state().settings.limits,
        )

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
