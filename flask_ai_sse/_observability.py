"""What streams cost, seen and bounded: the Flask side of metrics, traces, signals,
the end-of-stream log line and token budgets.

::

    request ─► guards: budget check (429) ─► start_generation
                                               │ Telemetry.opening(): span "chat <model>",
                                               │   estimated input, the client key
                                               ▼
                  provider.open()  (observed by a wrapper: upstream count, latency, retries,
                                               │  fallbacks, child span)
                                               ▼
             Engine.start(observers=[..., StreamWatch, BudgetMeter], wrap=trace context)
                                               │
          StreamWatch.started ── metrics, ``stream_started`` signal
          BudgetMeter.chunk   ── charges every ~200 tokens, aborts past the budget
          StreamWatch.finished ─ metrics, span end, ``stream_ended`` signal, one log line

Everything here runs once per stream (or per batch of tokens for a budget), never
per token. See ``docs/observability.rst``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Response, has_request_context

from . import constants as C
from . import signals
from ._budgets import BudgetMeter, Budgets, create_budgets
from ._usage import cost, estimate_request, settle
from .chunks import Answer, ChatRequest
from .errors import AISSEError, ProviderError, StoreError
from .providers.base import ChunkStream, Provider
from .providers.fallback import FallbackProvider

if TYPE_CHECKING:
    from ._tracing import Tracer
    from .engine import Generation, Observer
    from .extension import AppState
    from .metrics import Metrics, ModelLabels

T = TypeVar("T")

__all__ = ["StreamWatch", "Telemetry", "hash_key"]

#: The logger of the one line per stream end (INFO).
stream_logger = logging.getLogger("flask_ai_sse.streams")
logger = logging.getLogger("flask_ai_sse")


def hash_key(key: str | None, secret: bytes) -> str | None:
    """A stable pseudonym for a client key in logs: HMAC with the app's secret key,
    so that a log reader cannot recover an address or user id by guessing."""
    if key is None:
        return None
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:16]


class Telemetry:
    """One app's metrics, tracer, budgets and signal sender (``AppState.telemetry``)."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        metrics: Metrics | None = None,
        models: ModelLabels | None = None,
        tracer: Tracer | None = None,
        budgets: Budgets | None = None,
        metrics_endpoint: bool = False,
        registry: Any = None,
        key_of: Callable[[], str] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.models = models
        self.tracer = tracer
        self.budgets = budgets
        self.metrics_endpoint = metrics_endpoint
        self.registry = registry
        self._key_of = key_of

    @property
    def _secret(self) -> bytes:
        """The app's ``SECRET_KEY`` (read when used: an app may set it after ``init_app``)."""
        secret = self.app.config.get("SECRET_KEY") if self.app is not None else None
        if isinstance(secret, str):
            secret = secret.encode()
        return secret or b"flask-ai-sse"

    @classmethod
    def setup(cls, app: Flask, state: AppState) -> Telemetry:
        """Build what the settings ask for; observe the provider, listen to the engine."""
        settings = state.settings.observability
        metrics = models = registry = None
        if settings.metrics is not False:
            from .metrics import Metrics, ModelLabels

            registry = None if settings.metrics is True else settings.metrics
            metrics = Metrics.for_registry(registry)
            known = state.settings.limits.allowed_models or ()
            models = ModelLabels({*known, state.provider.model})
        tracer = None
        if settings.tracing:
            from ._tracing import Tracer, available

            tracer = Tracer() if available() else None
        budgets = None
        if settings.token_budget:
            budgets = create_budgets(settings.budget_url, settings.token_budget)
            state.guards.budgets = budgets
        telemetry = cls(
            app,
            metrics=metrics,
            models=models,
            tracer=tracer,
            budgets=budgets,
            metrics_endpoint=settings.metrics_endpoint,
            registry=registry,
            key_of=state.guards.client_key,
        )
        if metrics is not None or tracer is not None:
            state.provider = telemetry.observe(state.provider)
            state.engine.listener = telemetry
        return telemetry

    def model(self, name: str) -> str:
        return self.models(name) if self.models is not None else name

    # -- before a stream -----------------------------------------------------------

    def client_key(self) -> str | None:
        if self._key_of is None or not has_request_context():
            return None
        return self._key_of()

    def check_budget(self, key: str | None = None) -> None:
        """429 ``budget_exceeded`` when ``key`` (default: the current request's client key)
        spent its ``AI_SSE_TOKEN_BUDGET``; for an app's own views (the routes check it)."""
        key = key if key is not None else self.client_key()
        if self.budgets is not None and key is not None:
            self.budgets.check(key)

    def refused(self, error: AISSEError) -> None:
        """Count a 429 the routes answered (rate limit, stream cap, budget)."""
        if (
            self.metrics is not None
            and error.status == 429
            and not isinstance(error, ProviderError)
        ):
            self.metrics.refusals.labels(error.type).inc()

    @contextmanager
    def opening(self, request: ChatRequest, provider: Provider) -> Iterator[StreamWatch]:
        """Around the upstream call of a stream: its span is current while it opens."""
        watch = StreamWatch(self, request, key=self.client_key())
        if self.tracer is None:
            yield watch
            return
        first = getattr(provider, "providers", [provider])[0]  # a fallback chain's first
        span = watch.span = self.tracer.start_stream(
            provider=first.name,
            model=request.model,
            options={"temperature": request.temperature, "max_tokens": request.max_tokens},
        )
        token = self.tracer.activate(span)
        try:
            yield watch
        except BaseException as exc:
            self.tracer.fail(span, getattr(exc, "type", type(exc).__name__))
            span.end()
            raise
        finally:
            self.tracer.deactivate(token)

    # -- the upstream: observed by composition, the adapters know nothing of this --

    def observe(self, provider: Provider) -> Provider:
        """``provider`` behind an observer that counts and traces every upstream call.

        A fallback chain is rebuilt from observed members, so each member is
        counted under its own name and a failure that falls back is seen. Retries
        are heard through the transport's ``on_retry`` hooks. Nothing is patched.
        """
        if isinstance(provider, FallbackProvider):
            last = len(provider.providers) - 1
            return FallbackProvider(
                [
                    _ObservedProvider(member, self, falls_back=position < last)
                    for position, member in enumerate(provider.providers)
                ]
            )
        return _ObservedProvider(provider, self)

    def upstream_called(
        self, provider: str, request: ChatRequest, outcome: str, started: float, *, falls_back: bool
    ) -> None:
        if self.metrics is not None:
            if falls_back and outcome != "ok":
                self.metrics.upstream_fallbacks.labels(provider).inc()
            self.metrics.upstream_requests.labels(provider, outcome).inc()
            self.metrics.upstream_latency.labels(provider).observe(time.monotonic() - started)
        if self.tracer is not None:
            self.tracer.step(
                f"ai_sse.upstream {provider}",
                started,
                {
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": request.model,
                    "ai_sse.upstream.outcome": outcome,
                },
                error_type=None if outcome == "ok" else outcome,
            )

    def upstream_retrying(self, provider: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_retries.labels(provider).inc()

    # -- the engine's readers (EngineListener) --------------------------------------

    def reader_opened(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.readers_opened.labels(kind).inc()
            self.metrics.readers_active.inc()

    def reader_closed(self) -> None:
        if self.metrics is not None:
            self.metrics.readers_active.dec()

    def store_timed(self, operation: str, seconds: float, failed: bool) -> None:
        if self.metrics is not None:
            self.metrics.store_latency.labels(operation).observe(seconds)
            if failed:
                self.metrics.store_errors.labels(operation).inc()

    # -- a whole answer (POST /ask) ---------------------------------------------------

    def answered(self, answer: Answer, request: ChatRequest) -> None:
        """Count an answer that was not streamed: tokens, cost, budget."""
        text_chars = len(answer.text) + len(answer.reasoning)
        usage = settle(
            answer.usage, prompt_estimate=estimate_request(request), output_chars=text_chars
        )
        key = self.client_key()
        if self.budgets is not None and key is not None:
            try:
                self.budgets.charge(key, int(usage["total_tokens"]))
            except StoreError:
                logger.warning("could not charge a token budget", exc_info=True)
        if self.metrics is not None:
            provider, model = answer.provider, self.model(request.model)
            self._count_tokens(provider, model, usage)
            price = cost(usage, answer.model, self._prices())
            if price is not None:
                self.metrics.cost.labels(provider, model).inc(price)

    def _prices(self) -> Mapping[str, Any]:
        if self.app is None:
            return {}
        return self.app.extensions[C.EXTENSION_NAME].engine.settings.prices  # type: ignore[no-any-return]

    def _count_tokens(self, provider: str, model: str, usage: Mapping[str, Any]) -> None:
        assert self.metrics is not None
        estimated = "true" if usage.get("estimated") else "false"
        tokens = self.metrics.tokens
        tokens.labels(provider, model, "input", estimated).inc(int(usage["prompt_tokens"]))
        tokens.labels(provider, model, "output", estimated).inc(int(usage["completion_tokens"]))

    # -- tools (the tool runner calls this) -------------------------------------------

    def tool_called(
        self,
        stream_id: str | None,
        tool: str,
        *,
        started: float,
        arguments: Any = None,
        result: Any = None,
        error_type: str | None = None,
    ) -> None:
        """Record a tool call the server ran: metric, span, ``tool_called`` signal.

        ``started`` is the ``time.monotonic()`` reading taken before the call.
        Call it in the producer's greenlet, so the span is the stream's child.
        """
        duration = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.tool_calls.labels(tool, error_type or "ok").inc()
            self.metrics.tool_duration.labels(tool).observe(duration)
        if self.tracer is not None:
            self.tracer.step(
                f"execute_tool {tool}",
                started,
                {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
                error_type=error_type,
            )
        _send(
            signals.tool_called,
            self.app,
            stream_id=stream_id,
            tool=tool,
            arguments=arguments,
            result=result,
            error_type=error_type,
            duration=duration,
        )

    # -- the metrics route ------------------------------------------------------------

    def metrics_response(self) -> Response:
        from .metrics import exposition

        body, content_type = exposition(self.registry)
        return Response(body, content_type=content_type)


def _send(signal: Any, sender: Any, **payload: Any) -> None:
    if not signal.receivers:
        return
    try:
        signal.send(sender, **payload)
    except Exception:
        logger.exception("a receiver of %s failed", signal.name)


class StreamWatch:
    """One stream followed from its upstream call to its end (an engine observer)."""

    follows_chunks = False

    def __init__(self, telemetry: Telemetry, request: ChatRequest, *, key: str | None) -> None:
        self.telemetry = telemetry
        self.request_started = time.monotonic()
        self.prompt_estimate = estimate_request(request)
        self.key = key
        self.span: Any = None
        self.meter: BudgetMeter | None = None
        budgets = telemetry.budgets
        if budgets is not None and key is not None:
            self.meter = BudgetMeter(budgets, key, prompt_estimate=self.prompt_estimate)

    @property
    def observers(self) -> list[Observer]:
        """This watch, and the budget meter when the key has a budget."""
        return [self] if self.meter is None else [self, self.meter]

    @property
    def wrap(self) -> Callable[[Callable[[], None]], Callable[[], None]] | None:
        """Runs the producer in the stream span's context."""
        tracer = self.telemetry.tracer
        return None if tracer is None or self.span is None else tracer.carry(self.span)

    def _labels(self, generation: Generation) -> tuple[str, str]:
        """Provider and model as asked (a response names a dated version: not bounded)."""
        return generation.chunks.provider, self.telemetry.model(generation.chunks.model)

    def started(self, generation: Generation) -> None:
        telemetry = self.telemetry
        metrics = telemetry.metrics
        if metrics is not None:
            metrics.streams_started.labels(*self._labels(generation)).inc()
            metrics.streams_active.inc()
        _send(
            signals.stream_started,
            telemetry.app,
            stream_id=generation.stream_id,
            provider=generation.answer.provider,
            model=generation.answer.model,
            conversation_id=generation.start_data.get("conversation_id"),
            client_key=self.key,
        )

    def chunk(self, generation: Generation, chunk: Any) -> None:
        """Never called (``follows_chunks`` is false)."""

    def finished(self, generation: Generation) -> None:
        telemetry = self.telemetry
        answer = generation.answer
        ending = generation.ending
        error_type = generation.error.type if generation.error is not None else None
        usage = generation.usage or {}
        end = generation.ended_at or time.monotonic()
        duration = end - self.request_started
        first = generation.first_token_at
        ttft = None if first is None else first - self.request_started
        metrics = telemetry.metrics
        if metrics is not None:
            provider, model = self._labels(generation)
            metrics.streams_active.dec()
            metrics.streams_ended.labels(provider, model, ending, error_type or "").inc()
            metrics.stream_duration.labels(provider, model, ending).observe(duration)
            if first is not None and ttft is not None:
                metrics.time_to_first_token.labels(provider, model).observe(ttft)
                pieces = len(answer.text_parts)
                if pieces > 1:
                    gap = (generation.last_activity - first) / (pieces - 1)
                    metrics.inter_token_gap.labels(provider, model).observe(max(0.0, gap))
            if usage:
                telemetry._count_tokens(provider, model, usage)
            if generation.cost is not None:
                metrics.cost.labels(provider, model).inc(generation.cost)
        if telemetry.tracer is not None and self.span is not None:
            telemetry.tracer.end_stream(
                self.span,
                stream_id=generation.stream_id,
                provider=answer.provider,
                model=answer.model,
                finish_reason=generation.finish_reason,
                ending=ending,
                usage=usage or None,
                error_type=error_type,
                cost=generation.cost,
            )
        conversation_id = generation.start_data.get("conversation_id")
        _send(
            signals.stream_ended,
            telemetry.app,
            stream_id=generation.stream_id,
            provider=answer.provider,
            model=answer.model,
            conversation_id=conversation_id,
            client_key=self.key,
            ending=ending,
            finish_reason=generation.finish_reason,
            error_type=error_type,
            answer=answer.text,
            usage=usage,
            cost=generation.cost,
            time_to_first_token=ttft,
            duration=duration,
        )
        if not stream_logger.isEnabledFor(logging.INFO):
            return
        fields = {
            "stream_id": generation.stream_id,
            "conversation_id": conversation_id,
            "owner": hash_key(self.key, telemetry._secret),
            "provider": answer.provider,
            "model": answer.model,
            "ending": ending,
            "error_type": error_type,
            "finish_reason": generation.finish_reason,
            "input_tokens": usage.get("prompt_tokens"),
            "output_tokens": usage.get("completion_tokens"),
            "estimated": usage.get("estimated"),
            "cost": generation.cost,
            "ttft": None if ttft is None else round(ttft, 4),
            "duration": round(duration, 4),
        }
        stream_logger.info(
            "stream ended %s",
            " ".join(f"{k}={v}" for k, v in fields.items() if v is not None),
            extra={"ai_sse": fields},
        )


class _ObservedProvider(Provider):
    """A provider whose every call ``telemetry`` hears of: a wrapper, not a patch."""

    def __init__(self, inner: Provider, telemetry: Telemetry, *, falls_back: bool = False) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # the wrapped adapter's, per instance
        self._telemetry = telemetry
        self._falls_back = falls_back
        hooks = getattr(getattr(inner, "transport", None), "on_retry", None)
        if hooks is not None:
            hooks.append(functools.partial(telemetry.upstream_retrying, inner.name))

    @property
    def model(self) -> str:
        return self.inner.model

    def open(self, request: ChatRequest) -> ChunkStream:
        return self._observed(self.inner.open, request)

    def complete(self, request: ChatRequest) -> Answer:
        return self._observed(self.inner.complete, request)

    def _observed(self, call: Callable[[ChatRequest], T], request: ChatRequest) -> T:
        started = time.monotonic()
        outcome = "ok"
        try:
            return call(request)
        except AISSEError as exc:
            outcome = exc.type
            raise
        finally:
            self._telemetry.upstream_called(
                self.name, request, outcome, started, falls_back=self._falls_back
            )

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # What an adapter offers beyond the Provider interface (``base_url``, a fake's
        # ``requests``) reads through.
        return getattr(self.inner, name)
