"""CPU per streamed event with and without the observability features, in one process.

Runs whole streams of the fake provider (no delay) through the engine and the Flask
test client and reports process CPU microseconds per text event. Compare trees by
running it twice in the same session (the machine is noisy: quote ratios)::

    PYTHONPATH=<tree> python benchmarks/observability_micro.py off
    PYTHONPATH=<tree> python benchmarks/observability_micro.py all
    PYTHONPATH=<tree> python benchmarks/observability_micro.py all 4000 10  # tokens, streams

``off``: the defaults (usage settled at each end, signals and the end log line; no
metrics, no budget; spans only if opentelemetry is installed). ``all``: metrics on a
private registry, an in-memory token budget, a price table, and OpenTelemetry spans
recorded by the SDK (when installed); ``metrics``, ``budget`` (with prices) and
``tracing`` turn on one of them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

TOKENS = 400
STREAMS = 60


def make_app(mode: str) -> Flask:
    config: dict[str, Any] = {"AI_SSE_KEEPALIVE": 30, "AI_SSE_TRACING": False}
    if mode in ("all", "metrics"):
        import prometheus_client

        config.update(AI_SSE_METRICS=prometheus_client.CollectorRegistry())
    if mode in ("all", "budget"):
        config.update(
            AI_SSE_TOKEN_BUDGET="1000000000/day",
            AI_SSE_PRICES={"fake-1": {"input": 1, "output": 2}},
        )
    if mode in ("all", "tracing"):
        config.update(AI_SSE_TRACING=True)
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
            trace.set_tracer_provider(provider)
        except ImportError:
            pass
    app = Flask(__name__)
    app.config.update(config)
    reply = FakeReply(chunks=["tok "] * TOKENS, delay=0)
    AISSE(app, provider=FakeProvider(script=[reply]))
    return app


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "off"
    global TOKENS, STREAMS
    if len(sys.argv) > 3:  # tokens and streams: a long stream shows per-token cost alone
        TOKENS, STREAMS = int(sys.argv[2]), int(sys.argv[3])
    logging.getLogger("flask_ai_sse").setLevel(logging.WARNING)
    app = make_app(mode)
    client = app.test_client()
    for _ in range(5):  # warm up
        collect(client.get("/ai/stream?prompt=x"))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(STREAMS):
        resp = client.get("/ai/stream?prompt=x")
        assert len(collect(resp).text) == 4 * TOKENS
        resp.close()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    per_event = cpu / (STREAMS * TOKENS) * 1e6
    print(f"{mode}: {per_event:.2f} us CPU per event ({STREAMS} streams x {TOKENS}, {wall:.2f} s)")


if __name__ == "__main__":
    main()
