"""Metrics summed over two gunicorn gevent workers (prometheus_client's multiprocess
mode) and token budgets shared through Redis by two servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flask_ai_sse.testing import collect

from ..helpers import ROOT, open_stream, wait_until
from ..http.sse_client import call

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

APP = "tests.apps.hardening_app:create_app()"
GUNICORN_CONF = str(ROOT / "examples" / "observability" / "gunicorn.conf.py")
LONG_PROMPT = "word " * 500  # the fake echoes it: 5 s of tokens at 10 ms each


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = call("GET", f"{url}/ai/metrics")
    assert resp.status_code == 200, resp.text
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.server
@pytest.mark.redis
def test_metrics_are_summed_over_two_gevent_workers(gunicorn_server, redis_url, tmp_path: Path):
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    server = gunicorn_server(
        {
            "AI_SSE_METRICS": True,
            "AI_SSE_METRICS_ENDPOINT": True,
            "AI_SSE_STORE": redis_url,  # cancel and resume reach any worker
            "AI_SSE_FAKE_RESPONSE": "{prompt}",
            "AI_SSE_FAKE_DELAY": 0.01,
            "AI_SSE_DISCONNECT_GRACE": 0.1,
            "AI_SSE_KEEPALIVE": 0.5,
        },
        app=APP,
        workers=2,
        extra_args=["-c", GUNICORN_CONF],
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
    )
    url = server.url
    pids: set[str] = set()
    completed = 0
    last_id = ""
    while len(pids) < 2 or completed < 4:  # until both workers served streams
        resp = call("POST", f"{url}/ai/stream", json={"prompt": "one two three"})
        assert resp.status_code == 200
        result = collect(resp.content)
        assert result.text == "one two three"
        pids.add(resp.headers["X-Worker-Pid"])
        last_id = result.start["stream_id"]
        completed += 1
        assert completed < 60, "one worker served every stream"
    # cancelled, from a request that may reach the other worker
    live = open_stream(f"{url}/ai/stream", method="POST", json={"prompt": LONG_PROMPT})
    seen = b""
    for piece in live.iter_content(chunk_size=None):  # until the first text has come
        seen += piece
        if b'{"content"' in seen:
            break
    stream_id = seen.split(b'"stream_id":"')[1].split(b'"')[0].decode()
    assert call("POST", f"{url}/ai/streams/{stream_id}/cancel").status_code == 202
    live.close()
    # disconnected: the client leaves, the grace runs out
    gone = open_stream(f"{url}/ai/stream", method="POST", json={"prompt": LONG_PROMPT})
    seen = b""
    for piece in gone.iter_content(chunk_size=None):
        seen += piece
        if b'{"content"' in seen:
            break
    gone.close()
    # resumed
    resumed = call("GET", f"{url}/ai/streams/{last_id}", headers={"Last-Event-ID": f"{last_id}:2"})
    assert collect(resumed.content).text == "two three"

    labels = {"provider": "fake", "model": "fake-1"}
    ended = "ai_sse_streams_ended_total"

    def settled() -> bool:
        samples = scrape(url)
        return (
            sample(samples, ended, **labels, ending="disconnected", error_type="") == 1
            and sample(samples, "ai_sse_streams_active") == 0
            and sample(samples, "ai_sse_readers_active") == 0
        )

    wait_until(settled)
    for _ in range(4):  # whichever worker answers the scrape, it answers for both
        samples = scrape(url)
        assert sample(samples, "ai_sse_streams_started_total", **labels) == completed + 2
        assert sample(samples, ended, **labels, ending="completed", error_type="") == completed
        assert sample(samples, ended, **labels, ending="cancelled", error_type="") == 1
        assert sample(samples, ended, **labels, ending="disconnected", error_type="") == 1
        assert sample(samples, "ai_sse_readers_opened_total", kind="first") == completed + 2
        assert sample(samples, "ai_sse_readers_opened_total", kind="resume") == 1
        out = sample(
            samples, "ai_sse_tokens_total", **labels, direction="output", estimated="false"
        )
        assert out == 3 * completed
        ttft = sample(samples, "ai_sse_time_to_first_token_seconds_count", **labels)
        assert ttft == completed + 2
    written = {p.stem.rsplit("_", 1)[1] for p in multiproc.glob("counter_*.db")}
    assert pids <= written  # both workers' own files were summed


@pytest.mark.server
@pytest.mark.redis
def test_token_budget_is_shared_across_two_servers_on_redis(gunicorn_server, redis_url):
    config = {
        "AI_SSE_TOKEN_BUDGET": "150/day",
        "AI_SSE_TOKEN_BUDGET_STORAGE": redis_url,
        "AI_SSE_FAKE_RESPONSE": "{prompt}" + " word" * 300,  # about 375 tokens
        "AI_SSE_FAKE_DELAY": 0.005,
        "AI_SSE_KEEPALIVE": 0.5,
    }
    one, two = gunicorn_server(config, app=APP), gunicorn_server(config, app=APP)
    alice = {"X-User": "alice"}
    cut = call("POST", f"{one.url}/ai/stream", json={"prompt": "x"}, headers=alice)
    result = collect(cut.content)
    error = json.loads(result.named("error")[0].data)
    assert error["error"]["type"] == "budget_exceeded"
    assert error["usage"]["estimated"] is True and error["usage"]["total_tokens"] >= 150
    assert 0 < len(result.text) < 1500  # cut short
    for server in (two, one):
        refused = call("POST", f"{server.url}/ai/stream", json={"prompt": "x"}, headers=alice)
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "budget_exceeded"
        assert int(refused.headers["Retry-After"]) >= 1
    bob = call("POST", f"{two.url}/ai/stream", json={"prompt": "hi"}, headers={"X-User": "bob"})
    assert collect(bob.content).text.startswith("hi word")


@pytest.mark.server
def test_a_dead_workers_live_gauges_leave_with_it(gunicorn_server, tmp_path: Path):
    """gunicorn's ``child_exit`` hook (examples/observability/gunicorn.conf.py) drops them."""
    import os
    import signal

    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    server = gunicorn_server(
        {
            "AI_SSE_METRICS": True,
            "AI_SSE_METRICS_ENDPOINT": True,
            "AI_SSE_FAKE_RESPONSE": "{prompt}",
            "AI_SSE_FAKE_DELAY": 0.02,
            "AI_SSE_KEEPALIVE": 0.5,
        },
        app=APP,
        workers=2,
        extra_args=["-c", GUNICORN_CONF],
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)},
    )
    doomed = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": LONG_PROMPT})
    pid = int(doomed.headers["X-Worker-Pid"])
    assert sample(scrape(server.url), "ai_sse_streams_active") == 1
    os.kill(pid, signal.SIGKILL)
    doomed.close()
    wait_until(lambda: sample(scrape(server.url), "ai_sse_streams_active") == 0)
    assert sample(scrape(server.url), "ai_sse_readers_active") == 0
