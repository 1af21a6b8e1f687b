"""The conversation routes, added to the extension's blueprint when persistence is on.

Every route answers only the conversation's owner: anyone else gets the same
404 as for a conversation that does not exist, never its data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request
from werkzeug.exceptions import Forbidden

from .._request import read_json_body
from .._validation import Limits
from ..errors import ValidationError

if TYPE_CHECKING:
    from .conversations import ConversationStore

View = Callable[..., Any]
Route = Callable[[str, list[str]], Callable[[View], View]]

MAX_TITLE_CHARS = 255
MAX_PAGE = 200


def _body(limits: Limits, *, required: bool) -> dict[str, Any]:
    """The JSON object of the request; an optional body may be absent altogether."""
    if (
        not required
        and not request.content_length
        and "chunked" not in (request.headers.get("Transfer-Encoding", "").lower())
    ):
        return {}
    body = read_json_body(limits)
    if not isinstance(body, dict):
        raise ValidationError("The JSON body must be an object.", type="invalid_body")
    return body


def _title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("'title' must be a string.", type="invalid_type", field="title")
    value = value.strip()
    if len(value) > MAX_TITLE_CHARS:
        raise ValidationError(
            f"'title' is longer than {MAX_TITLE_CHARS} characters.", type="too_long", field="title"
        )
    return value or None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(
            f"'{name}' must be an integer.", type="invalid_type", field=name
        ) from None
    if not low <= value <= high:
        raise ValidationError(
            f"'{name}' must be between {low} and {high}.", type="out_of_range", field=name
        )
    return value


def add_conversation_routes(
    route: Route,
    *,
    store: Callable[[], ConversationStore],
    owner: Callable[[], str | None],
    limits: Callable[[], Limits],
) -> None:
    """Add create, list, get, rename and delete of conversations through ``route``.

    ``store``, ``owner`` and ``limits`` give the current app's store, the current
    request's owner and the input limits.
    """

    @route("/conversations", ["POST"])
    def conversation_create() -> tuple[Response, int]:
        body = _body(limits(), required=False)
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            raise ValidationError("'system' must be a string.", type="invalid_type", field="system")
        limit = limits().max_prompt_chars
        if system is not None and len(system) > limit:
            raise ValidationError(
                f"'system' is longer than {limit} characters.", type="too_long", field="system"
            )
        conversation = store().create(title=_title(body.get("title")), system=system or None)
        return jsonify(conversation.to_dict()), 201

    @route("/conversations", ["GET"])
    def conversation_list() -> Response:
        key = owner()
        if key is None:
            # Anonymous conversations are reachable by their unguessable id only:
            # a list would show everyone's.
            raise Forbidden("Listing conversations needs a signed-in owner.")
        conversations = store().list(
            owner=key,
            limit=_int_arg("limit", 50, 1, MAX_PAGE),
            offset=_int_arg("offset", 0, 0, 2**31),
        )
        return jsonify({"conversations": [c.to_dict() for c in conversations]})

    @route("/conversations/<conversation_id>", ["GET"])
    def conversation_get(conversation_id: str) -> Response:
        conversation, messages = store().conversation_with_messages(conversation_id)
        return jsonify({**conversation.to_dict(), "messages": [m.to_dict() for m in messages]})

    @route("/conversations/<conversation_id>", ["PATCH"])
    def conversation_rename(conversation_id: str) -> Response:
        body = _body(limits(), required=True)
        if "title" not in body:
            raise ValidationError("Send a 'title'.", type="missing_title", field="title")
        return jsonify(store().rename(conversation_id, _title(body["title"])).to_dict())

    @route("/conversations/<conversation_id>", ["DELETE"])
    def conversation_delete(conversation_id: str) -> tuple[str, int]:
        store().delete(conversation_id)
        return "", 204
