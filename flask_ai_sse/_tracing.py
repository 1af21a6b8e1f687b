"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (the ``otel`` extra).

One span per stream, ``chat <model>`` (the GenAI semantic conventions' name for
a chat call), opened in the request before the upstream call, so that the
upstream step (``ai_sse.upstream <provider>``) and any tool call
(``execute_tool <name>``) are its children; it ends with the stream, in the
producer's greenlet, which runs inside the request's trace context.

Attributes follow the GenAI conventions (``gen_ai.provider.name`` and the older
``gen_ai.system``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...)
plus ``ai_sse.stream.id``, ``ai_sse.ending`` and ``ai_sse.usage.estimated``.
No prompt or answer text is recorded. Without an SDK configured the API's
no-op tracer makes all of this nearly free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Tracer", "available"]


def available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


class Tracer:
    """flask-ai-sse's tracer (``opentelemetry.trace.get_tracer("flask_ai_sse")``)."""

    def __init__(self) -> None:
        from opentelemetry import context, trace

        from . import __version__

        self._trace = trace
        self._context = context
        self._tracer = trace.get_tracer("flask_ai_sse", __version__)

    def start_stream(self, *, provider: str, model: str, options: Mapping[str, Any]) -> Any:
        """The stream's span, a child of the current one (the request's, if traced)."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
        }
        for key, name in (("temperature", "temperature"), ("max_tokens", "max_tokens")):
            if options.get(key) is not None:
                attributes[f"gen_ai.request.{name}"] = options[key]
        return self._tracer.start_span(
            f"chat {model}", kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )

    def activate(self, span: Any) -> object:
        """Make ``span`` current; returns the token for :meth:`deactivate`."""
        return self._context.attach(self._trace.set_span_in_context(span))

    def deactivate(self, token: object) -> None:
        self._context.detach(token)  # type: ignore[arg-type]

    def carry(self, span: Any) -> Callable[[Callable[[], None]], Callable[[], None]]:
        """Wrap the producer's run so that it runs in ``span``'s context."""

        def wrap(run: Callable[[], None]) -> Callable[[], None]:
            def traced() -> None:
                token = self.activate(span)
                try:
                    run()
                finally:
                    self.deactivate(token)

            return traced

        return wrap

    def end_stream(
        self,
        span: Any,
        *,
        stream_id: str,
        provider: str,
        model: str,
        finish_reason: str | None,
        ending: str,
        usage: Mapping[str, Any] | None,
        error_type: str | None,
        cost: float | None,
    ) -> None:
        span.set_attribute("ai_sse.stream.id", stream_id)
        span.set_attribute("gen_ai.provider.name", provider)  # who answered, after fallbacks
        span.set_attribute("gen_ai.system", provider)
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("ai_sse.ending", ending)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", int(usage["prompt_tokens"]))
            span.set_attribute("gen_ai.usage.output_tokens", int(usage["completion_tokens"]))
            span.set_attribute("ai_sse.usage.estimated", bool(usage.get("estimated")))
        if cost is not None:
            span.set_attribute("ai_sse.cost", cost)
        if error_type is not None:
            self.fail(span, error_type)
        span.end()

    def fail(self, span: Any, error_type: str) -> None:
        span.set_attribute("error.type", error_type)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error_type))

    def step(
        self,
        name: str,
        started: float,
        attributes: Mapping[str, Any],
        *,
        error_type: str | None = None,
    ) -> None:
        """A finished child span (upstream call, tool call) recorded after the fact.

        ``started`` is a ``time.monotonic()`` reading: the span runs from then to now.
        """
        now_ns = time.time_ns()
        begin_ns = now_ns - int((time.monotonic() - started) * 1e9)
        span = self._tracer.start_span(name, start_time=begin_ns, attributes=dict(attributes))
        if error_type is not None:
            self.fail(span, error_type)
        span.end(end_time=now_ns)
