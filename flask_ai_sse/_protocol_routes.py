"""Routes for front ends that speak another protocol, and the browser client.

``POST /chat`` and ``GET /chat/<chat_id>/stream`` serve the AI SDK's ``useChat``
(``DefaultChatTransport``); ``POST /v1/chat/completions`` serves OpenAI SDK
clients; ``GET /client.js`` is the shipped browser client. Each view turns its
request into the same validated parameters as ``POST /stream`` and hands over
to the extension: same guards, limits, model allow-list, owners and engine.

A chat id finds its latest stream through a small pointer log in the stream
store (``chat.<hash of owner and chat id>``, metadata ``{"owner", "stream_id"}``):
so it works across workers with Redis, is tied to its owner, and expires with
the store's TTL after the stream ends.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request

from ._openai_body import completion_params
from ._request import read_json_body, requested_event_id
from ._toolrun import route_steps, route_tools
from ._ui_messages import ui_messages
from ._validation import MAX_ID_CHARS, Limits, validate
from .chunks import ChatRequest
from .errors import AISSEError, NotFound, ValidationError
from .protocols import PROTOCOLS
from .protocols.openai import completion, error_body

if TYPE_CHECKING:
    from .engine import Generation, Observer, StreamStore
    from .extension import AISSE

__all__ = ["add_protocol_routes", "requested_protocol"]

Route = Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]


def requested_protocol() -> str | None:
    """``?protocol=`` of the request (``None``: the app's default), or a 400."""
    value = request.args.get("protocol")
    if value is None:
        return None
    if value not in PROTOCOLS:
        raise ValidationError(
            f"'protocol' must be one of {', '.join(PROTOCOLS)}.",
            type="invalid_protocol",
            field="protocol",
        )
    return value


# -- useChat ------------------------------------------------------------------------------


def chat_params(body: Any, limits: Limits, default_model: str) -> tuple[str, ChatRequest]:
    """``(chat id, parameters)`` from a ``DefaultChatTransport`` body.

    Besides ``id`` and ``messages``, the fields of ``POST /stream`` (``system``,
    ``model``, ``temperature``, ``max_tokens``, ``conversation_id``, ``tools``,
    ``max_steps``) may come in the transport's ``body``. With a ``conversation_id`` the
    stored conversation is the history: only the user's new messages (those after the
    last answer) are taken, or the client tools' results when the last message is the
    answer that asked for them.
    """
    if not isinstance(body, Mapping):
        raise ValidationError("The JSON body must be an object.", type="invalid_body")
    chat_id = body.get("id")
    if not isinstance(chat_id, str) or not chat_id or len(chat_id) > MAX_ID_CHARS:
        raise ValidationError(
            f"'id' must be a chat id of 1 to {MAX_ID_CHARS} characters.",
            type="invalid_type",
            field="id",
        )
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValidationError("'messages' must be a list.", type="invalid_type", field="messages")
    each = ui_messages(messages, limits.max_messages)
    conversation_id = body.get("conversation_id")
    if conversation_id is not None and each:
        # The stored conversation has the answers; after the last one come the user's
        # new messages or, when it asked for client tools, their results.
        answered = [i for i, m in enumerate(messages[: len(each)]) if _role(m) == "assistant"]
        if answered and answered[-1] == len(each) - 1:
            last = each[-1]
            start = len(last)
            while start and last[start - 1]["role"] == "tool":
                start -= 1
            each = [last[start:]]
        elif answered:
            each = each[answered[-1] + 1 :]
    converted = [m for group in each for m in group]
    params = validate(
        messages=converted,
        conversation_id=conversation_id,
        system=body.get("system"),
        model=body.get("model"),
        temperature=body.get("temperature"),
        max_tokens=body.get("max_tokens"),
        tools=body.get("tools"),
        max_steps=body.get("max_steps"),
        limits=limits,
        default_model=default_model,
        restrict_model=True,
    )
    return chat_id, params


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, Mapping) else None


def _pointer_id(owner: str | None, chat_id: str) -> str:
    """A chat's pointer log: never a stream id (those have no dot), one per owner."""
    digest = hashlib.sha256(f"{owner or ''}\0{chat_id}".encode()).hexdigest()
    return f"chat.{digest}"


class ChatPointer:
    """An observer that points a chat id at its generation while it runs, and a TTL after."""

    def __init__(self, store: StreamStore, pointer_id: str, owner: str | None) -> None:
        self.store = store
        self.pointer_id = pointer_id
        self.owner = owner

    def started(self, generation: Generation) -> None:
        meta = {"owner": self.owner, "stream_id": generation.stream_id}
        self.store.create(self.pointer_id, meta)
        # Watched like a running stream, so a shared store keeps it alive until the end.
        self.store.watch(self.pointer_id, _ignore)

    def chunk(self, generation: Generation, chunk: Any) -> None:
        pass

    def finished(self, generation: Generation) -> None:
        try:
            self.store.append(self.pointer_id, [], final=True)  # from now on, the store's TTL
        finally:
            self.store.unwatch(self.pointer_id)


def _ignore(signal: str) -> None:
    """Nobody signals a pointer; a signal to it is dropped."""


# -- OpenAI -------------------------------------------------------------------------------


def openai_error(error: AISSEError) -> Response:
    """OpenAI's error object, with our status and headers (``Retry-After``)."""
    body = error_body(error.to_dict())
    body["error"]["param"] = (error.details or {}).get("field")  # the field at fault
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


# -- the routes ---------------------------------------------------------------------------


def add_protocol_routes(route: Route, ai: AISSE) -> None:
    """Add the front-end routes to a blueprint through its ``route`` helper."""

    @route("/chat", ["POST"], spends=True)
    def chat(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        limits = state.settings.limits
        chat_id, params = chat_params(read_json_body(limits), limits, state.provider.model)
        # AI_SSE_TOOLS, or the body's names within them, as /stream
        params.requested_tools = route_tools(params.requested_tools, state.settings.tools.names)
        params.max_steps = route_steps(params.max_steps, state.settings.tools.max_steps)
        owner = ai.current_owner()
        pointer = ChatPointer(state.engine.store, _pointer_id(owner, chat_id), owner)
        generation = ai.start_generation(
            params, owner=owner, state=state, observers=[*observers, pointer]
        )
        return ai.follow_response(generation, "vercel", state=state)

    @route("/chat/<chat_id>/stream", ["GET"], connects=True)
    def chat_resume(chat_id: str) -> Response:
        state = ai.state()
        owner = ai.current_owner()  # before the lookup, as every attach
        meta = state.engine.store.meta(_pointer_id(owner, chat_id))
        if meta is None or meta.get("owner") != owner or not meta.get("stream_id"):
            return Response(status=204)
        stream_id = str(meta["stream_id"])
        parsed = requested_event_id()
        # The AI SDK replays a resumed stream from its start; Last-Event-ID continues it.
        after = parsed[1] if parsed is not None and parsed[0] == stream_id else 0
        try:
            return ai.attach(stream_id, after, protocol="vercel")
        except NotFound:  # the stream expired before its pointer did
            return Response(status=204)

    @route("/v1/chat/completions", ["POST"])
    def chat_completions() -> Response:
        # The guards run inside, so that their refusals (429) are OpenAI errors too.
        try:
            return ai.state().guards.admit(completions)  # type: ignore[no-any-return]
        except AISSEError as exc:
            return openai_error(exc)

    def completions(observers: Sequence[Observer]) -> Response:
        state = ai.state()
        limits = state.settings.limits
        try:
            params, stream, include_usage = completion_params(
                read_json_body(limits), limits, state.provider.model, state.settings.tools.names
            )
            if not stream:
                answer = ai.complete(params, state=state)
                return jsonify(
                    completion(
                        stream_id=ai.state().engine.new_stream_id(),
                        created=int(time.time()),
                        model=answer.model,
                        text=answer.text,
                        finish=answer.finish_reason,
                        usage=answer.usage.to_dict() if answer.usage else None,
                        tool_calls=answer.tool_calls,
                        reasoning=answer.reasoning,
                    )
                )
            generation = ai.start_generation(
                params, owner=ai.current_owner(), state=state, observers=observers
            )
            return ai.follow_response(
                generation, "openai", {"include_usage": include_usage}, state=state
            )
        except AISSEError as exc:
            return openai_error(exc)

    @route("/client.js", ["GET"])
    def client_js() -> Response:
        source = resources.files("flask_ai_sse").joinpath("static/client.js").read_bytes()
        response = Response(source, mimetype="text/javascript")
        response.headers["Cache-Control"] = "no-cache"
        response.add_etag()
        response.make_conditional(request)
        return response
