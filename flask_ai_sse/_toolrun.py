"""Flask glue of the step loop: resolve ``tools=``, check ``schema=``, run tools in the app.

The loop itself is pure (:mod:`flask_ai_sse._steps`); this module hands it the
provider, the configured limits and a way to call a tool inside the app context
(a tool may use the database or the config, as a view would).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from ._steps import AnswerChunks, StepStream, check_schema, fold
from .chunks import Answer, ChatRequest
from .errors import ValidationError
from .providers.base import AbortSignal, ChunkStream

if TYPE_CHECKING:
    from .extension import AISSE, AppState


def _invoke_in(app: Flask) -> Callable[[Callable[..., Any], dict[str, Any]], Any]:
    def invoke(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        with app.app_context():
            return fn(**arguments)

    return invoke


def uses_steps(request: ChatRequest) -> bool:
    """Whether ``request`` needs the step loop: tools offered, or a schema to check."""
    return bool(request.requested_tools) or request.schema is not None


def open_steps(
    ai: AISSE,
    state: AppState,
    request: ChatRequest,
    *,
    whole: bool = False,
    abort: AbortSignal | None = None,
) -> ChunkStream:
    """The first step's upstream answer, in the step loop when tools or a schema are asked.

    ``whole``: each step is a non-streamed request (``ask()``). ``abort`` can stop the
    first step's open while its status is awaited (``Provider.open_abortable``).
    """
    provider = state.provider

    def open_first(step: ChatRequest) -> ChunkStream:
        if whole:
            return AnswerChunks(provider.complete(step))
        return provider.open(step) if abort is None else provider.open_abortable(step, abort)

    if not uses_steps(request):
        return open_first(request)
    tools = ai.tools.resolve(request.requested_tools or [])
    choice = request.tool_choice
    if choice not in (None, "auto", "none", "required") and choice not in {t.name for t in tools}:
        raise ValidationError(
            f"'tool_choice' names {choice!r}, which is not among the tools offered.",
            type="invalid_tools",
            field="tool_choice",
        )
    if request.schema is not None:
        check_schema(request.schema)
    settings = state.settings.tools
    max_steps = request.max_steps if request.max_steps is not None else settings.max_steps
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValidationError("'max_steps' must be a positive integer.", type="out_of_range")
    request.tools = [t.spec for t in tools]

    def open_step(step: ChatRequest) -> ChunkStream:
        return AnswerChunks(provider.complete(step)) if whole else provider.open(step)

    return StepStream(
        open_first(request),
        request,
        open_step,
        tools,
        max_steps=max_steps,
        tool_timeout=settings.timeout,
        invoke=_invoke_in(current_app._get_current_object()),  # type: ignore[attr-defined]
    )


def complete_steps(stream: ChunkStream) -> Answer:
    """``ask()`` with tools or a schema: every step folded into one answer."""
    return fold(stream)


def route_tools(requested: list[Any] | None, allowed: Sequence[str]) -> list[Any]:
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


def route_steps(requested: int | None, limit: int) -> int | None:
    """A route client's ``max_steps``: at most ``AI_SSE_MAX_STEPS`` (a 400 above it)."""
    if requested is not None and requested > limit:
        raise ValidationError(
            f"'max_steps' must be between 1 and {limit}.", type="out_of_range", field="max_steps"
        )
    return requested
