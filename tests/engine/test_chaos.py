"""Chaos: two gunicorn gevent servers on a Redis of the test's own, 200 streams with stored
conversations, then a worker SIGKILL, a Redis restart and a Redis pause in one run.

Every client (reconnecting to the other server with ``Last-Event-ID`` when its
connection drops, as a browser would) ends with one terminal event and ``[DONE]``
within the bound; its reassembled text is a prefix of the answer (or all of it),
with no event twice; every stored message reaches a final status.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from tests.apps.persist_app import SLOW_TEXT

from ..persistence.test_server import APP, call
from .test_store_faults import worker_pids

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]

STREAMS = 200
#: What a client may wait for its end, from the start of the chaos: the answers (20 s),
#: the pause and the restart (3 s), the lapse of a killed producer (budget 6 + 3 beats
#: of 2 s) and a check, plus a margin for a loaded machine.
BOUND = 60.0
OWNER = {"X-Owner": "alice"}


def create(server: Any) -> str:
    """A conversation, with room for a loaded machine (200 of them are made at once)."""
    resp = requests.post(f"{server.url}/ai/conversations", json={}, headers=OWNER, timeout=60)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


class Client:
    """One browser: reads its stream, and on a dropped connection resumes elsewhere."""

    def __init__(self, servers: list[Any], first: int, cid: str) -> None:
        self.servers = servers
        self.first = first
        self.cid = cid
        self.events: list[ServerSentEvent] = []
        self.reconnects = 0
        self.ended_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            resp = requests.post(
                f"{self.servers[self.first].url}/ai/stream",
                json={"prompt": "slow chaos", "conversation_id": self.cid},
                headers=OWNER,
                stream=True,
                timeout=(5, 30),
            )
            self._read(resp)
            target = 1 - self.first
            while not self.ended and self.reconnects < 20:
                self.reconnects += 1
                time.sleep(0.5)  # a browser's retry delay, not an assertion
                try:
                    resp = requests.get(
                        f"{self.servers[target].url}/ai/streams/{self.stream_id}",
                        headers={**OWNER, "Last-Event-ID": self.events[-1].id},
                        stream=True,
                        timeout=(5, 30),
                    )
                except requests.RequestException:
                    continue
                if resp.status_code == 200:
                    self._read(resp)
            self.ended_at = time.monotonic()
        except Exception as exc:  # reported by the test, with the others
            self.error = repr(exc)

    def _read(self, resp: requests.Response) -> None:
        decoder = SSEDecoder()
        try:
            for chunk in resp.iter_content(chunk_size=None):
                self.events.extend(decoder.feed(chunk))
        except requests.RequestException:
            pass  # the worker died under it: resume

    @property
    def stream_id(self) -> str:
        return str(json.loads(self.events[0].data)["stream_id"])

    @property
    def ended(self) -> bool:
        return bool(self.events) and self.events[-1].data == "[DONE]"


def test_chaos_every_client_ends_once_with_a_prefix_of_its_answer(
    gunicorn_server, own_redis, stored_database
):
    redis_server = own_redis()
    settings = {
        **stored_database,
        "AI_SSE_STORE": redis_server.url(),
        "AI_SSE_STORE_OUTAGE_BUDGET": 6,
        "AI_SSE_REDIS_TIMEOUT": 0.5,
        "AI_SSE_KEEPALIVE": 1,
        "AI_SSE_DISCONNECT_GRACE": 10,
        "AI_SSE_PERSIST_INTERVAL": 2,
        "AI_SSE_PERSIST_EVERY": 1000,
        # Hundreds of streams from one address here: no per-key connection cap.
        "AI_SSE_MAX_CONNECTIONS_PER_KEY": None,
    }
    servers = [
        gunicorn_server(settings, app=APP, extra_args=["--worker-connections", "2000"])
        for _ in range(2)
    ]
    with ThreadPoolExecutor(max_workers=10) as pool:
        cids = list(pool.map(lambda n: create(servers[n % 2]), range(STREAMS)))
    clients = [Client(servers, n % 2, cid) for n, cid in enumerate(cids)]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline = started + 30
    while not all(c.events or c.error for c in clients) and time.monotonic() < deadline:
        time.sleep(0.1)  # every stream started: the faults come mid-stream
    assert [c.error for c in clients if c.error] == []
    assert all(c.events for c in clients), "streams did not start"
    started = time.monotonic()

    time.sleep(1)  # the chaos timeline, not assertions
    for pid in worker_pids(servers[0].proc.pid):
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    redis_server.restart(down_for=1.0)
    time.sleep(1.5)
    redis_server.pause()
    time.sleep(2)
    redis_server.resume()

    for thread in threads:
        thread.join(timeout=max(1.0, started + BOUND - time.monotonic()))
    assert [(c.first, c.error) for c in clients if c.error] == []
    assert all(not t.is_alive() for t in threads), "a client did not end within the bound"
    ends: dict[str, int] = {}
    for client in clients:
        assert client.ended
        data = [e for e in client.events if e.data != "[DONE]"]
        terminal = [e for e in data if e.event in ("done", "error")]
        assert len(terminal) == 1, [(e.event, e.data) for e in terminal]
        assert [e.data for e in client.events].count("[DONE]") == 1
        ids = [e.id for e in data]
        assert ids == [f"{client.stream_id}:{n}" for n in range(1, len(ids) + 1)]
        text = "".join(json.loads(e.data)["content"] for e in data if e.event == "message")
        assert SLOW_TEXT.startswith(text)
        kind = terminal[0].event
        if kind == "error":
            kind = terminal[0].json()["error"]["type"]
        else:
            assert text == SLOW_TEXT
        ends[kind] = ends.get(kind, 0) + 1
    # The producers on the killed worker were interrupted; the others were not hurt
    # by the restart and the pause (both within the budget).
    assert set(ends) <= {"done", "interrupted"}, ends
    assert ends.get("interrupted", 0) == STREAMS // 2 and ends.get("done") == STREAMS // 2

    deadline = time.monotonic() + 20
    while True:
        statuses = [
            call(servers[1], "GET", f"/ai/conversations/{cid}").json()["messages"][-1]["status"]
            for cid in cids
        ]
        if "streaming" not in statuses or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # polling, not an assertion
    assert statuses.count("completed") == STREAMS // 2
    assert statuses.count("failed") == STREAMS // 2
