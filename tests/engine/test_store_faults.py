"""Redis faults against real gunicorn gevent servers and a redis-server of the test's own.

Whatever Redis does (stalls, restarts), every client gets keepalives while it
waits and exactly one terminal event + ``[DONE]`` at the end; an outage shorter
than ``AI_SSE_STORE_OUTAGE_BUDGET`` costs nothing; a producer whose worker died
ends its stream as ``interrupted`` for readers on other workers.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_ai_sse.sse import SSEDecoder
from flask_ai_sse.testing import StreamResult
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock

from ..helpers import ROOT, wait_until

pytestmark = [pytest.mark.server, pytest.mark.redis]

WORDS = 80
TEMPLATE = " ".join(f"w{i}" for i in range(WORDS)) + " fin."


def open_stream(
    url: str, *, method: str = "GET", timeout: float = 10.0, **kwargs: Any
) -> requests.Response:
    """An SSE request with a read timeout; a connect timeout with room for a burst of
    hundreds of connections on a loaded machine."""
    return requests.request(method, url, stream=True, timeout=(20, timeout), **kwargs)


def config(redis_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "AI_SSE_STORE": redis_url,
        "AI_SSE_KEEPALIVE": 0.3,
        "AI_SSE_FAKE_DELAY": 0.05,
        "AI_SSE_FAKE_RESPONSE": TEMPLATE,
        "AI_SSE_REDIS_TIMEOUT": 0.5,
        "AI_SSE_DISCONNECT_POLICY": "finish",
        # Hundreds of streams from one address here: no per-key connection cap.
        "AI_SSE_MAX_CONNECTIONS_PER_KEY": None,
        **extra,
    }


class Timed:
    """A live SSE response read in a thread: every piece with its arrival time."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp = resp
        self.pieces: list[tuple[float, bytes]] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for chunk in self.resp.iter_content(chunk_size=None):
                self.pieces.append((time.monotonic(), chunk))
        except requests.RequestException:
            pass
        finally:
            self.done.set()

    def count(self, needle: bytes) -> int:
        return sum(piece.count(needle) for _, piece in self.pieces)

    def result(self, timeout: float = 60) -> StreamResult:
        assert self.done.wait(timeout), "the response did not end"
        decoder = SSEDecoder(comments=True)
        result = StreamResult()
        for _, piece in self.pieces:
            for item in decoder.feed(piece):
                if hasattr(item, "event"):
                    result.events.append(item)  # type: ignore[arg-type]
                else:
                    result.comments.append(item)  # type: ignore[arg-type]
        return result

    def gaps_between(self, start: float, end: float) -> float:
        """The longest silence of the response between ``start`` and ``end``."""
        times = [start] + [t for t, _ in self.pieces if start < t < end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))


def exactly_one_end(result: StreamResult, stream_id: str) -> None:
    """One terminal event, then ``[DONE]`` last; ids in order with none repeated."""
    ends = [e for e in result.events if e.event in ("done", "error")]
    assert len(ends) == 1, [(e.event, e.data) for e in ends]
    assert result.ended and [e.data for e in result.events].count("[DONE]") == 1
    ids = [e.id for e in result.events if e.data != "[DONE]"]
    if len(ids) > 1 and ids[-1] == ids[-2] and ends[0].event == "error":
        ids.pop()  # an error the reader wrote repeats the last id sent: resume stays exact
    assert ids == [f"{stream_id}:{n}" for n in range(1, len(ids) + 1)]


def start_stream(server: Any, prompt: str = "x") -> tuple[Timed, str]:
    resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": prompt})
    assert resp.status_code == 200, resp.text
    timed = Timed(resp)
    wait_until(lambda: timed.count(b"event: start") and timed.count(b'"content"') >= 5)
    head = timed.pieces[0][1].split(b"data: ", 1)[1].split(b"\n", 1)[0]
    return timed, json.loads(head)["stream_id"]


def test_a_short_stall_costs_nothing_and_keepalives_flow(gunicorn_server, own_redis):
    redis_server = own_redis()
    server = gunicorn_server(config(redis_server.url(), AI_SSE_STORE_OUTAGE_BUDGET=8))
    timed, stream_id = start_stream(server)
    redis_server.pause()
    paused_at = time.monotonic()
    time.sleep(3.0)  # the stall being simulated, not an assertion
    resumed_at = time.monotonic()
    redis_server.resume()
    result = timed.result()
    exactly_one_end(result, stream_id)
    assert result.terminal is not None and result.terminal.event == "done"
    assert result.text == TEMPLATE  # every token, in order, none twice
    during = [p for t, p in timed.pieces if paused_at < t < resumed_at]
    assert sum(p.count(b": keepalive") for p in during) >= 4
    assert timed.gaps_between(paused_at, resumed_at) < 1.2  # keepalive 0.3 s, never stopped


def test_a_stall_beyond_the_budget_ends_every_reader_with_one_store_error(
    gunicorn_server, own_redis
):
    redis_server = own_redis()
    server = gunicorn_server(config(redis_server.url(), AI_SSE_STORE_OUTAGE_BUDGET=2))
    timed, stream_id = start_stream(server)
    redis_server.pause()
    paused_at = time.monotonic()
    try:
        result = timed.result(timeout=20)
        ended_at = time.monotonic()
    finally:
        redis_server.resume()
    exactly_one_end(result, stream_id)
    assert result.terminal is not None and result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "store_unavailable"
    assert TEMPLATE.startswith(result.text)
    assert 2 <= ended_at - paused_at < 6  # the budget, plus at most a keepalive and a read
    assert timed.gaps_between(paused_at, ended_at) < 1.2


def test_a_restart_within_the_budget_costs_nothing(gunicorn_server, own_redis):
    redis_server = own_redis()
    server = gunicorn_server(config(redis_server.url(), AI_SSE_STORE_OUTAGE_BUDGET=8))
    timed, stream_id = start_stream(server)
    redis_server.restart(down_for=1.0)
    result = timed.result()
    exactly_one_end(result, stream_id)
    assert result.terminal is not None and result.terminal.event == "done"
    assert result.text == TEMPLATE


def test_a_new_stream_gets_its_503_in_seconds_and_never_reaches_the_provider(
    gunicorn_server, own_redis
):
    redis_server = own_redis()
    with OpenAIMock(default=MockReply(text="never")) as mock:
        server = gunicorn_server(
            config(
                redis_server.url(),
                AI_SSE_PROVIDER="openai",
                AI_SSE_BASE_URL=mock.base_url,
                AI_SSE_API_KEY="k",
            )
        )
        redis_server.pause()
        try:
            started = time.monotonic()
            resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "x"})
            elapsed = time.monotonic() - started
        finally:
            redis_server.resume()
        assert resp.status_code == 503
        assert resp.json()["error"]["type"] == "store_unavailable"
        assert elapsed < 6  # AI_SSE_REDIS_TIMEOUT 0.5 s, one retry; room for a loaded machine
        assert mock.requests == []


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_killed_producer_ends_its_readers_on_other_workers_as_interrupted(
    gunicorn_server, own_redis
):
    redis_server = own_redis()
    settings = config(redis_server.url(), AI_SSE_STORE_OUTAGE_BUDGET=1, AI_SSE_FAKE_DELAY=0.2)
    a, b = gunicorn_server(settings), gunicorn_server(settings)
    _first, stream_id = start_stream(a)
    on_b = Timed(open_stream(f"{b.url}/ai/streams/{stream_id}", timeout=30))
    wait_until(lambda: on_b.count(b'"content"') >= 1)
    for pid in worker_pids(a.proc.pid):
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    result = on_b.result(timeout=30)
    took = time.monotonic() - killed_at
    exactly_one_end(result, stream_id)
    assert result.terminal is not None and result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "interrupted"
    # Bound: lapse (budget 1 + 3 beats of 2 s) + one check period (2 s) + a beat in flight.
    assert took < 1 + 3 * 2 + 2 + 2
    assert TEMPLATE.startswith(result.text)
    # A reconnect anywhere gets the same clear end.
    again = open_stream(
        f"{b.url}/ai/streams/{stream_id}", headers={"Last-Event-ID": f"{stream_id}:1"}
    )
    tail = Timed(again).result()
    assert tail.terminal is not None and tail.terminal.json()["error"]["type"] == "interrupted"
    assert tail.ended


@pytest.mark.postgres
def test_a_killed_producers_message_is_marked_interrupted_and_reconcile_asks_heartbeats(
    gunicorn_server, own_redis, stored_database
):
    from tests.apps.persist_app import SLOW_TEXT

    from ..persistence.test_server import APP, call, create, wait_message

    redis_server = own_redis()
    settings = {
        **stored_database,
        **config(redis_server.url(), AI_SSE_STORE_OUTAGE_BUDGET=1),
        "AI_SSE_PERSIST_INTERVAL": 0.1,
    }
    a, b = gunicorn_server(settings, app=APP), gunicorn_server(settings, app=APP)
    cid = create(a)
    owner = {"X-Owner": "alice"}
    resp = open_stream(
        f"{a.url}/ai/stream",
        method="POST",
        json={"prompt": "slow and doomed", "conversation_id": cid},
        headers=owner,
    )
    on_a = Timed(resp)
    wait_until(lambda: on_a.count(b'"content"') >= 3)
    start = json.loads(on_a.pieces[0][1].split(b"data: ", 1)[1].split(b"\n", 1)[0])
    stream_id, message_id = start["stream_id"], start["message_id"]

    def reconcile(*args: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.update({f"APP_{k}": json.dumps(v) for k, v in settings.items()})
        cmd = [sys.executable, "-m", "flask", "--app", APP.removesuffix("()")]
        done = subprocess.run(
            [*cmd, "ai-sse", "reconcile", *args],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    # Its producer beats: even "--older-than 0" leaves a live stream alone.
    assert "Marked 0 " in reconcile("--older-than", "0")

    on_b = Timed(open_stream(f"{b.url}/ai/streams/{stream_id}", headers=owner, timeout=30))
    wait_until(lambda: on_b.count(b'"content"') >= 1)
    for pid in worker_pids(a.proc.pid):
        os.kill(pid, signal.SIGKILL)
    result = on_b.result(timeout=30)
    assert result.terminal is not None
    assert result.terminal.json()["error"]["type"] == "interrupted"
    message = wait_message(b, cid, message_id, owner="alice")
    assert message["status"] == "failed"
    assert message["content"] and SLOW_TEXT.startswith(message["content"])
    assert call(b, "GET", f"/ai/conversations/{cid}").status_code == 200


def test_connections_per_worker_stay_a_small_constant_at_200_streams(gunicorn_server, own_redis):
    """Followers share one reading loop; the short-command pool is capped by config."""
    redis_server = own_redis()
    words = 30
    server = gunicorn_server(
        config(
            redis_server.url(),
            AI_SSE_FAKE_DELAY=0.1,
            AI_SSE_FAKE_RESPONSE=" ".join(f"w{i}" for i in range(words)),
            AI_SSE_REDIS_MAX_CONNECTIONS=8,
            AI_SSE_KEEPALIVE=5,
        ),
        extra_args=["--worker-connections", "2000"],
    )
    before = len(redis_server.clients())
    streams = []
    with ThreadPoolExecutor(max_workers=50) as pool:
        streams = list(pool.map(lambda _: start_stream(server), range(200)))
        attached = list(
            pool.map(
                lambda s: Timed(open_stream(f"{server.url}/ai/streams/{s[1]}", timeout=30)),
                streams[:100],
            )
        )
        during = len(redis_server.clients())
        results = [timed.result() for timed, _ in streams] + [t.result() for t in attached]
    assert before == 0 and during <= 8 + 2, during  # the pool, the reading loop, pub/sub
    for result in results:
        assert result.terminal is not None and result.terminal.event == "done"
        assert result.text == " ".join(f"w{i}" for i in range(words))


def test_a_burst_of_300_new_streams_gets_no_503_from_redis_pools(gunicorn_server, own_redis):
    """Slots, rate limit and store all on Redis: their pools wait instead of refusing."""
    redis_server = own_redis()
    server = gunicorn_server(
        config(
            redis_server.url(),
            AI_SSE_FAKE_DELAY=0.01,
            AI_SSE_FAKE_RESPONSE="short answer",
            AI_SSE_RATE_LIMIT="100000/minute",
            AI_SSE_RATE_LIMIT_STORAGE=redis_server.url(1),
            AI_SSE_MAX_STREAMS_PER_KEY=1000,
            AI_SSE_MAX_STREAMS_STORAGE=redis_server.url(2),
            AI_SSE_REDIS_MAX_CONNECTIONS=10,
        ),
        extra_args=["--worker-connections", "2000"],
    )

    def one(_: int) -> tuple[int, str]:
        resp = open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "x"})
        return resp.status_code, resp.text

    with ThreadPoolExecutor(max_workers=150) as pool:
        answers = list(pool.map(one, range(300)))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 300, {s: statuses.count(s) for s in set(statuses)}
    assert all(text.endswith("data: [DONE]\n\n") for _, text in answers)
    assert len(redis_server.clients()) <= 3 * (10 + 2)
