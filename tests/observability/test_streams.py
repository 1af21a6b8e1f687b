"""Usage on every ending, signals, the stream-end log line, metrics, spans and budgets,
in one process (the Flask test client); tests/observability/test_servers.py runs gunicorn."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, request

from flask_ai_sse import AISSE
from flask_ai_sse.errors import ProviderError
from flask_ai_sse.signals import stream_ended, stream_started, tool_called
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

from ..helpers import wait_until

prometheus_client = pytest.importorskip("prometheus_client")

LONG = FakeReply(text="word " * 400, delay=0.01)  # about 4 s unless stopped
SECRET_PROMPT = "my-secret-prompt-text"
API_KEY = "sk-test-key-that-must-never-be-logged"


class Ended:
    """Receives ``stream_ended`` (and the others) for one app."""

    def __init__(self, app: Flask) -> None:
        self.started: list[dict[str, Any]] = []
        self.ended: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        stream_started.connect(self._started, sender=app, weak=False)
        stream_ended.connect(self._ended, sender=app, weak=False)
        tool_called.connect(self._tool, sender=app, weak=False)
        self.app = app

    def _started(self, sender: Flask, **payload: Any) -> None:
        self.started.append(payload)

    def _ended(self, sender: Flask, **payload: Any) -> None:
        with self.lock:
            self.ended.append(payload)

    def _tool(self, sender: Flask, **payload: Any) -> None:
        self.tools.append(payload)

    def wait(self, count: int = 1) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.ended) >= count)
        return self.ended

    def close(self) -> None:
        stream_started.disconnect(self._started, sender=self.app)
        stream_ended.disconnect(self._ended, sender=self.app)
        tool_called.disconnect(self._tool, sender=self.app)


@pytest.fixture
def registry() -> Any:
    return prometheus_client.CollectorRegistry()


def make_app(*script: FakeReply, **config: Any) -> tuple[Flask, AISSE]:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="test",
        AI_SSE_KEEPALIVE=5,
        AI_SSE_DISCONNECT_GRACE=0.05,
        AI_SSE_API_KEY=API_KEY,
    )
    app.config.update(config)
    ai = AISSE(app, provider=FakeProvider(script=script or [FakeReply(text="hi", delay=0)]))

    @ai.authorize
    def owner() -> str | None:
        return request.headers.get("X-User")

    return app, ai


@pytest.fixture
def signals_of() -> Iterator[Callable[[Flask], Ended]]:
    made: list[Ended] = []

    def make(app: Flask) -> Ended:
        made.append(Ended(app))
        return made[-1]

    yield make
    for ended in made:
        ended.close()


def run(resp: Any) -> Any:
    """The whole stream, then the response closed (as a WSGI server closes it)."""
    result = collect(resp)
    resp.close()
    return result


def stream_id_of(resp: Any) -> str:
    first = next(iter(resp.response))
    return str(first.split(b'"stream_id":"')[1].split(b'"')[0].decode())


# -- usage on every ending ---------------------------------------------------------------


def test_completed_reports_the_providers_usage_and_cost(signals_of):
    prices = {"fake-1": {"input": 1000, "output": 2000}}
    app, _ = make_app(FakeReply(text="one two three", delay=0), AI_SSE_PRICES=prices)
    seen = signals_of(app)
    result = collect(app.test_client().get("/ai/stream?prompt=hello"))
    done = json.loads(result.named("done")[0].data)
    usage = {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3, "estimated": False}
    assert done["usage"] == usage
    assert done["cost"] == pytest.approx(3 * 2000 / 1e6)
    (ended,) = seen.wait()
    assert ended["ending"] == "completed" and ended["usage"] == usage
    assert ended["cost"] == done["cost"] and ended["answer"] == "one two three"
    assert ended["client_key"] == "addr:127.0.0.1" and ended["finish_reason"] == "stop"
    assert ended["duration"] >= ended["time_to_first_token"] > 0
    assert seen.started[0]["stream_id"] == ended["stream_id"] == result.start["stream_id"]


def test_failed_mid_stream_reports_estimated_usage_in_the_error_event(signals_of):
    prices = {"fake": {"input": 1, "output": 1}}  # prices fake-1 by prefix
    app, _ = make_app(FakeReply(text="abcdefgh " * 4, fail_after=2, delay=0), AI_SSE_PRICES=prices)
    seen = signals_of(app)
    result = collect(app.test_client().get("/ai/stream?prompt=" + "p" * 40))
    error = json.loads(result.named("error")[0].data)
    assert error["error"]["type"] == "provider_error"
    assert error["usage"] == {
        "prompt_tokens": 10 + 4,  # 40 characters and one message's overhead
        "completion_tokens": 5,  # 18 characters sent
        "total_tokens": 19,
        "estimated": True,
    }
    assert error["cost"] == pytest.approx(19 / 1e6)
    (ended,) = seen.wait()
    assert (ended["ending"], ended["error_type"]) == ("failed", "provider_error")
    assert ended["usage"] == error["usage"]


def test_cancelled_reports_an_estimate(signals_of):
    app, _ = make_app(LONG)
    seen = signals_of(app)
    client = app.test_client()
    resp = client.get("/ai/stream?prompt=x", buffered=False)
    stream_id = stream_id_of(resp)
    wait_until(lambda: app.extensions["ai_sse"].engine.active[stream_id].answer.chunks > 3)
    assert client.post(f"/ai/streams/{stream_id}/cancel").status_code == 202
    result = collect(resp.response)
    done = json.loads(result.named("done")[0].data)
    assert done["finish_reason"] == "cancelled"
    assert done["usage"]["estimated"] is True
    assert done["usage"]["completion_tokens"] == -(-len(result.text) // 4)
    (ended,) = seen.wait()
    assert ended["ending"] == "cancelled" and ended["usage"] == done["usage"]


def test_disconnected_and_timed_out_streams_report_usage(signals_of):
    app, _ = make_app(
        LONG, FakeReply(text="a b c d", stall=5, stall_after=2, delay=0), AI_SSE_STREAM_TIMEOUT=0.5
    )
    seen = signals_of(app)
    client = app.test_client()
    resp = client.get("/ai/stream?prompt=x", buffered=False)
    next(iter(resp.response))
    resp.close()  # the client left: after the grace the generation stops
    (gone,) = seen.wait(1)
    assert gone["ending"] == "disconnected" and gone["usage"]["estimated"] is True
    result = collect(client.get("/ai/stream?prompt=y"))
    error = json.loads(result.named("error")[0].data)
    assert error["error"]["type"] == "timeout"
    assert error["usage"] == {
        "prompt_tokens": 1 + 4,
        "completion_tokens": 1,  # "a " and "b " sent before the stall: 4 characters
        "total_tokens": 6,
        "estimated": True,
    }
    assert seen.wait(2)[1]["ending"] == "timeout"


def test_the_stored_message_keeps_the_usage_of_every_ending(tmp_path):
    from flask_sqlalchemy import SQLAlchemy

    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/db.sqlite",
        AI_SSE_KEEPALIVE=5,
        AI_SSE_PRICES={"fake-1": {"input": 1, "output": 1}},
    )
    db = SQLAlchemy(app)
    ai = AISSE(app, db=db, provider=FakeProvider(script=[FakeReply(text="a b", fail_after=1)]))
    with app.app_context():
        db.create_all()
        conversation = ai.conversations.create()
        conversation_id = conversation.id
    result = collect(
        app.test_client().post(
            "/ai/stream", json={"prompt": "x", "conversation_id": conversation_id}
        )
    )
    assert result.named("error")
    with app.app_context():
        message = ai.conversations.messages(conversation_id)[-1]
        assert message.status == "failed"
        assert message.meta["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 1,
            "total_tokens": 6,
            "estimated": True,
        }
        assert message.meta["cost"] == pytest.approx(6 / 1e6)


# -- the log line -----------------------------------------------------------------------


def test_one_log_line_per_stream_without_prompt_or_key(caplog, signals_of):
    app, _ = make_app(
        FakeReply(text="fine", delay=0),
        FakeReply(text="x y", fail_after=1, delay=0),
        FakeReply(fail_before=ProviderError(f"refused, key {API_KEY[:8]}...")),
    )
    seen = signals_of(app)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            collect(client.get(f"/ai/stream?prompt={SECRET_PROMPT}", headers={"X-User": "alice"}))
        assert client.get(f"/ai/stream?prompt={SECRET_PROMPT}").status_code == 502
        seen.wait(2)
    lines = [r for r in caplog.records if r.name == "flask_ai_sse.streams"]
    assert len(lines) == 2
    fields = lines[0].ai_sse  # type: ignore[attr-defined]
    assert fields["ending"] == "completed" and lines[1].ai_sse["ending"] == "failed"  # type: ignore[attr-defined]
    assert fields["stream_id"] == seen.ended[0]["stream_id"]
    assert fields["output_tokens"] == 1 and fields["provider"] == "fake"
    assert fields["duration"] >= fields["ttft"] > 0
    assert len(fields["owner"]) == 16 and "alice" not in fields["owner"]
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert SECRET_PROMPT not in text and API_KEY not in text and "alice" not in text


# -- metrics ---------------------------------------------------------------------------


def value(registry: Any, name: str, **labels: str) -> float:
    return float(registry.get_sample_value(name, labels) or 0.0)


def test_metrics_after_completed_cancelled_failed_and_resumed_streams(registry, signals_of):
    app, _ = make_app(
        FakeReply(text="a b c", delay=0),
        LONG,
        FakeReply(text="a b c", fail_after=1, delay=0),
        FakeReply(fail_before=ProviderError("down")),
        FakeReply(text="resumed stream", delay=0),
        AI_SSE_METRICS=registry,
        AI_SSE_RATE_LIMIT="100/minute",
    )
    seen = signals_of(app)
    client = app.test_client()
    run(client.get("/ai/stream?prompt=x"))
    resp = client.get("/ai/stream?prompt=x", buffered=False)
    stream_id = stream_id_of(resp)
    assert value(registry, "ai_sse_streams_active") == 1
    assert value(registry, "ai_sse_readers_active") == 1
    wait_until(lambda: app.extensions["ai_sse"].engine.active[stream_id].answer.chunks > 2)
    client.post(f"/ai/streams/{stream_id}/cancel")
    collect(resp.response)
    resp.close()
    run(client.get("/ai/stream?prompt=x"))
    assert client.get("/ai/stream?prompt=x").status_code == 502
    whole = run(client.get("/ai/stream?prompt=x"))
    seen.wait(4)
    whole_id = whole.start["stream_id"]
    resumed = run(client.get(f"/ai/streams/{whole_id}", headers={"Last-Event-ID": f"{whole_id}:2"}))
    assert resumed.text == "stream"
    labels = {"provider": "fake", "model": "fake-1"}
    assert value(registry, "ai_sse_streams_started_total", **labels) == 4
    ended = "ai_sse_streams_ended_total"
    assert value(registry, ended, **labels, ending="completed", error_type="") == 2
    assert value(registry, ended, **labels, ending="cancelled", error_type="") == 1
    assert value(registry, ended, **labels, ending="failed", error_type="provider_error") == 1
    assert value(registry, "ai_sse_streams_active") == 0
    assert value(registry, "ai_sse_readers_active") == 0
    assert value(registry, "ai_sse_readers_opened_total", kind="first") == 4
    assert value(registry, "ai_sse_readers_opened_total", kind="resume") == 1
    assert value(registry, "ai_sse_upstream_requests_total", provider="fake", outcome="ok") == 4
    assert (
        value(registry, "ai_sse_upstream_requests_total", provider="fake", outcome="provider_error")
        == 1
    )
    assert value(registry, "ai_sse_time_to_first_token_seconds_count", **labels) == 4
    assert (
        value(registry, "ai_sse_stream_duration_seconds_count", **labels, ending="completed") == 2
    )
    out = value(registry, "ai_sse_tokens_total", **labels, direction="output", estimated="false")
    assert out == 3 + 2  # the provider's figures of the two completed streams
    assert (
        value(registry, "ai_sse_tokens_total", **labels, direction="output", estimated="true") > 0
    )
    assert value(registry, "ai_sse_store_operation_seconds_count", operation="create") == 4
    # bounded labels: no stream id anywhere in the exposition
    text = prometheus_client.generate_latest(registry).decode()
    assert stream_id not in text and "127.0.0.1" not in text


def test_the_metrics_route_is_off_unless_configured(registry):
    app, _ = make_app(AI_SSE_METRICS=registry)
    assert app.test_client().get("/ai/metrics").status_code == 404
    app, _ = make_app(AI_SSE_METRICS=registry, AI_SSE_METRICS_ENDPOINT=True)
    collect(app.test_client().get("/ai/stream?prompt=x"))
    resp = app.test_client().get("/ai/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert 'ai_sse_streams_started_total{model="fake-1",provider="fake"} 1.0' in resp.text


def test_the_metrics_route_is_behind_the_blueprints_decorators(registry):
    from flask import abort

    def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if request.headers.get("Authorization") != "Bearer scrape":
                abort(401)
            return view(*args, **kwargs)

        return wrapper

    app, ai = make_app(
        AI_SSE_METRICS=registry, AI_SSE_METRICS_ENDPOINT=True, AI_SSE_REGISTER_BLUEPRINT=False
    )
    app.register_blueprint(ai.create_blueprint(decorators=[login_required]), url_prefix="/ai")
    client = app.test_client()
    assert client.get("/ai/metrics").status_code == 401
    assert client.get("/ai/metrics", headers={"Authorization": "Bearer scrape"}).status_code == 200


def test_model_labels_stay_bounded():
    from flask_ai_sse.metrics import ModelLabels

    labels = ModelLabels(limit=2)
    assert [labels(m) for m in ("a", "b", "c", "a")] == ["a", "b", "other", "a"]
    known = ModelLabels(["x"], limit=1)
    assert [known(m) for m in ("y", "z", "x")] == ["y", "other", "x"]


# -- budgets ---------------------------------------------------------------------------


def test_budget_cuts_a_running_stream_then_refuses_the_next(registry, signals_of):
    app, _ = make_app(
        LONG,
        FakeReply(text="never", delay=0),
        AI_SSE_TOKEN_BUDGET="100/day",
        AI_SSE_METRICS=registry,
    )
    seen = signals_of(app)
    client = app.test_client()
    alice = {"X-User": "alice"}
    result = collect(client.get("/ai/stream?prompt=x", headers=alice))
    error = json.loads(result.named("error")[0].data)
    assert error["error"]["type"] == "budget_exceeded"
    assert 0 < len(result.text) < len("word " * 400)
    (ended,) = seen.wait()
    assert ended["ending"] == "budget" and ended["usage"]["estimated"] is True
    budgets = app.extensions["ai_sse"].telemetry.budgets
    assert budgets.used("owner:alice") == ended["usage"]["total_tokens"] >= 100
    refused = client.get("/ai/stream?prompt=x", headers=alice)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["type"] == "budget_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.post("/ai/ask", json={"prompt": "x"}, headers=alice).status_code == 429
    assert value(registry, "ai_sse_refusals_total", reason="budget_exceeded") == 2
    labels = {"provider": "fake", "model": "fake-1", "error_type": "budget_exceeded"}
    assert value(registry, "ai_sse_streams_ended_total", ending="budget", **labels) == 1
    # another key has its own budget
    assert collect(client.get("/ai/stream?prompt=x", headers={"X-User": "bob"})).text == "never"


def test_asks_are_charged_to_the_budget():
    app, _ = make_app(FakeReply(text="a b c d e", delay=0), AI_SSE_TOKEN_BUDGET="1000/hour")
    client = app.test_client()
    assert client.post("/ai/ask", json={"prompt": "x"}).status_code == 200
    budgets = app.extensions["ai_sse"].telemetry.budgets
    assert budgets.used("addr:127.0.0.1") == 5  # the fake's figures: 0 in, 5 out


# -- traces ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> Any:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_one_span_per_stream_with_genai_attributes_in_the_requests_trace(spans, signals_of):
    from opentelemetry import trace

    spans.clear()
    app, ai = make_app(FakeReply(text="one two three", delay=0))
    seen = signals_of(app)
    in_producer: list[Any] = []

    @stream_ended.connect_via(app)
    def record(sender: Flask, **payload: Any) -> None:
        in_producer.append(trace.get_current_span().get_span_context())
        ai.state(app).telemetry.tool_called(
            payload["stream_id"], "lookup", started=time.monotonic(), arguments={"q": 1}
        )

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("POST /chat") as parent:
        result = collect(app.test_client().get("/ai/stream?prompt=hi&max_tokens=20"))
    seen.wait()
    wait_until(lambda: len(spans.get_finished_spans()) >= 4)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    stream = by_name["chat fake-1"]
    assert stream.parent.span_id == parent.get_span_context().span_id
    attrs = dict(stream.attributes)
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "fake"
    assert attrs["gen_ai.request.model"] == "fake-1"
    assert attrs["gen_ai.request.max_tokens"] == 20
    assert attrs["gen_ai.usage.input_tokens"] == 0 and attrs["gen_ai.usage.output_tokens"] == 3
    assert list(attrs["gen_ai.response.finish_reasons"]) == ["stop"]
    assert attrs["ai_sse.stream.id"] == result.start["stream_id"]
    assert attrs["ai_sse.ending"] == "completed"
    upstream = by_name["ai_sse.upstream fake"]
    assert upstream.parent.span_id == stream.context.span_id
    tool = by_name["execute_tool lookup"]
    assert tool.parent.span_id == stream.context.span_id
    # the producer greenlet ran in the stream span's context
    assert in_producer[0].span_id == stream.context.span_id
    assert seen.tools[0]["tool"] == "lookup"
    for span in spans.get_finished_spans():
        assert "hi" not in json.dumps(dict(span.attributes or {}))


def test_a_refused_upstream_ends_its_span_with_the_error(spans):
    spans.clear()
    app, _ = make_app(FakeReply(fail_before=ProviderError("down")))
    assert app.test_client().get("/ai/stream?prompt=x").status_code == 502
    (upstream, stream) = sorted(spans.get_finished_spans(), key=lambda s: s.name)
    assert stream.name == "chat fake-1" and stream.attributes["error.type"] == "provider_error"
    assert upstream.attributes["ai_sse.upstream.outcome"] == "provider_error"
    assert stream.status.status_code.name == "ERROR"


def test_an_apps_own_view_can_check_the_budget_too():
    app, ai = make_app(FakeReply(text="word " * 10, delay=0), AI_SSE_TOKEN_BUDGET="10/hour")

    @app.get("/mine")
    def mine() -> Any:
        ai.state().telemetry.check_budget()
        return ai.ask_stream("x")

    client = app.test_client()
    assert run(client.get("/mine")).text == "word " * 10  # charged: the fake's 10 tokens
    refused = client.get("/mine")
    assert refused.status_code == 429 and refused.get_json()["error"]["type"] == "budget_exceeded"


def test_store_failures_are_counted_by_operation(registry):
    from flask_ai_sse.engine import MemoryStore
    from flask_ai_sse.errors import StoreError

    class FlakyStore(MemoryStore):
        def meta(self, stream_id: str) -> Any:
            raise StoreError("down")

    app = Flask(__name__)
    app.config.update(AI_SSE_KEEPALIVE=5, AI_SSE_METRICS=registry)
    AISSE(app, store=FlakyStore(ttl=60, max_events=100))
    assert app.test_client().get("/ai/streams/some-id").status_code == 503
    assert value(registry, "ai_sse_store_errors_total", operation="lookup") == 1
    assert value(registry, "ai_sse_store_operation_seconds_count", operation="lookup") == 1
