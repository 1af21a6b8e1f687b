"""Flask glue of the step loop: resolve ``tools=``, check ``schema=``, run tools in the app.

The loop itself is pure (:mod:`flask_ai_sse.steps`); this module hands it the
provider, the configured limits and a way to call a tool inside the app context
(a tool may use the database or the config, as a view would).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from . import constants as C
from .chunks import Answer, ChatRequest
from .errors import ValidationError
from .providers.base import ChunkStream
from .steps import AnswerChunks, StepStream, check_schema, fold
from .validation import AskParams

if TYPE_CHECKING:
    from .extension import AISSE, AppState


def _invoke_in(app: Flask) -> Callable[[Callable[..., Any], dict[str, Any]], Any]:
    def invoke(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        with app.app_context():
            return fn(**arguments)

    return invoke


def open_steps(
    ai: AISSE, state: AppState, params: AskParams, request: ChatRequest, *, whole: bool = False
) -> ChunkStream:
    """The first step's upstream answer, in the step loop when tools or a schema are asked."""
    provider = state.provider
    if not params.tools and params.schema is None:
        return AnswerChunks(provider.complete(request)) if whole else provider.open(request)
    tools = ai.tools.resolve(params.tools or [])
    choice = params.tool_choice
    if choice not in (None, "auto", "none", "required") and choice not in {t.name for t in tools}:
        raise ValidationError(
            f"'tool_choice' names {choice!r}, which is not among the tools offered.",
            type="invalid_tools",
            field="tool_choice",
        )
    if params.schema is not None:
        check_schema(params.schema)
    request.tools = [t.spec for t in tools]
    request.tool_choice = choice
    request.schema = params.schema
    max_steps = params.max_steps if params.max_steps is not None else state.config[C.MAX_STEPS]
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValidationError("'max_steps' must be a positive integer.", type="out_of_range")

    def open_step(step: ChatRequest) -> ChunkStream:
        return AnswerChunks(provider.complete(step)) if whole else provider.open(step)

    return StepStream(
        open_step(request),
        request,
        open_step,
        tools,
        max_steps=max_steps,
        tool_timeout=float(state.config[C.TOOL_TIMEOUT]),
        invoke=_invoke_in(current_app._get_current_object()),  # type: ignore[attr-defined]
    )


def complete_steps(stream: ChunkStream) -> Answer:
    """``ask()`` with tools or a schema: every step folded into one answer."""
    return fold(stream)


def route_tools(requested: list[Any] | None, allowed: tuple[str, ...] | list[str]) -> list[Any]:
    """The tools a route offers: ``AI_SSE_TOOLS``, or the body's names within it.

    A client may narrow the set, never widen it: a name outside it is a 400.
    """
    if requested is None:
        return list(allowed)
    outside = [name for name in requested if name not in allowed]
    if outside:
        raise ValidationError(
            f"Tool {outside[0]!r} is not offered here.", type="tool_not_allowed", field="tools"
        )
    return list(requested)
