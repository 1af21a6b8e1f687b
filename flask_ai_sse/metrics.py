"""Prometheus metrics (the ``metrics`` extra: ``prometheus_client``). No Flask here.

Every family is prefixed ``ai_sse_`` and labelled only with bounded values:
provider, model (capped, see :class:`ModelLabels`), ending, error type, reader
kind, operation, refusal reason. Never a stream id, owner or client key.

Several gunicorn workers: prometheus_client's multiprocess mode. Set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the workers start and
call :func:`mark_process_dead` from gunicorn's ``child_exit`` hook; every worker
then writes its values to files there and :func:`exposition` sums them, whichever
worker answers the scrape. Gauges of live things (active streams and readers)
count only live workers (``livesum``).

Nothing here runs per token: a stream's figures are observed once, at its end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError

__all__ = ["Metrics", "ModelLabels", "exposition", "mark_process_dead"]

#: Seconds: time to first token and upstream latency (what an operator alerts on).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)
#: Seconds: whole streams last from a second to many minutes.
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: Seconds between tokens.
GAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Store operations are milliseconds.
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "AI_SSE_METRICS needs prometheus_client: pip install 'flask-ai-sse[metrics]'."
        ) from None
    return prometheus_client


class ModelLabels:
    """Keeps the ``model`` label bounded: a client may name any model it likes.

    ``known`` names (``AI_SSE_ALLOWED_MODELS`` and the default model) always
    appear; others (fallbacks' models, names the app's own code passes) take the
    first ``limit`` places this process sees, and the rest are ``other``.
    """

    def __init__(self, known: Iterable[str] | None = None, *, limit: int = 50) -> None:
        self.known = frozenset(known or ())
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, model: str) -> str:
        if model in self.known or model in self._seen:
            return model
        if len(self._seen) < self.limit:
            self._seen.add(model)
            return model
        return "other"


class Metrics:
    """The metric families of flask-ai-sse on one registry.

    One instance per registry and process (:meth:`for_registry`): apps that share
    a registry share the families, as they must (a name registers once).
    """

    _instances: dict[int, Metrics] = {}
    _lock = threading.Lock()

    @classmethod
    def for_registry(cls, registry: Any = None) -> Metrics:
        """The families on ``registry`` (default: prometheus_client's global one)."""
        prom = _prometheus()
        registry = prom.REGISTRY if registry is None else registry
        with cls._lock:
            metrics = cls._instances.get(id(registry))
            if metrics is None or metrics.registry is not registry:
                metrics = cls._instances[id(registry)] = cls(registry)
            return metrics

    def __init__(self, registry: Any) -> None:
        prom = _prometheus()
        self.registry = registry
        counter, gauge, histogram = prom.Counter, prom.Gauge, prom.Histogram
        r = {"registry": registry}
        pm = ("provider", "model")
        self.streams_active = gauge(
            "ai_sse_streams_active",
            "Generations running in this process (summed over live workers).",
            multiprocess_mode="livesum",
            **r,
        )
        self.readers_active = gauge(
            "ai_sse_readers_active",
            "Client connections reading a stream (summed over live workers).",
            multiprocess_mode="livesum",
            **r,
        )
        self.streams_started = counter("ai_sse_streams_started", "Generations started.", pm, **r)
        self.streams_ended = counter(
            "ai_sse_streams_ended",
            "Generations ended, by ending (completed, failed, cancelled, disconnected,"
            " timeout, budget) and error type (empty unless failed).",
            (*pm, "ending", "error_type"),
            **r,
        )
        self.time_to_first_token = histogram(
            "ai_sse_time_to_first_token_seconds",
            "From the request to the first text sent, upstream latency included.",
            pm,
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.stream_duration = histogram(
            "ai_sse_stream_duration_seconds",
            "From the request to the stream's end.",
            (*pm, "ending"),
            buckets=DURATION_BUCKETS,
            **r,
        )
        self.inter_token_gap = histogram(
            "ai_sse_inter_token_gap_seconds",
            "Mean gap between a stream's chunks, one observation per stream.",
            pm,
            buckets=GAP_BUCKETS,
            **r,
        )
        self.tokens = counter(
            "ai_sse_tokens",
            "Tokens used, by direction (input, output) and whether they were estimated.",
            (*pm, "direction", "estimated"),
            **r,
        )
        self.cost = counter(
            "ai_sse_cost", "Cost from AI_SSE_PRICES (the table's currency).", pm, **r
        )
        self.readers_opened = counter(
            "ai_sse_readers_opened",
            "Client connections to a stream: first (the starting response), attach, resume.",
            ("kind",),
            **r,
        )
        self.upstream_requests = counter(
            "ai_sse_upstream_requests",
            "Upstream calls (after retries), by outcome: ok or the error type.",
            ("provider", "outcome"),
            **r,
        )
        self.upstream_latency = histogram(
            "ai_sse_upstream_latency_seconds",
            "From the upstream call to its status (retries and their waits included).",
            ("provider",),
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.upstream_retries = counter(
            "ai_sse_upstream_retries",
            "Upstream attempts retried after a failure.",
            ("provider",),
            **r,
        )
        self.upstream_fallbacks = counter(
            "ai_sse_upstream_fallbacks",
            "Times a provider failed before streaming and the next fallback was tried.",
            ("provider",),
            **r,
        )
        self.tool_calls = counter(
            "ai_sse_tool_calls", "Tool calls run by the server.", ("tool", "outcome"), **r
        )
        self.tool_duration = histogram(
            "ai_sse_tool_duration_seconds",
            "Time tools took.",
            ("tool",),
            buckets=LATENCY_BUCKETS,
            **r,
        )
        self.store_latency = histogram(
            "ai_sse_store_operation_seconds",
            "Stream store operations of a stream's life (create, lookup); not per event.",
            ("operation",),
            buckets=STORE_BUCKETS,
            **r,
        )
        self.store_errors = counter(
            "ai_sse_store_errors", "Stream store failures seen by the engine.", ("operation",), **r
        )
        self.refusals = counter(
            "ai_sse_refusals",
            "Requests refused with 429: rate_limited, too_many_streams, budget_exceeded.",
            ("reason",),
            **r,
        )


def exposition(registry: Any = None) -> tuple[bytes, str]:
    """The text format of ``registry`` (default: the global one) and its content type.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) every worker's files
    are read, so any worker answers for all of them.
    """
    prom = _prometheus()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    elif registry is None:
        registry = prom.REGISTRY
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """For gunicorn's ``child_exit`` hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
