"""Conversations over a real gunicorn gevent server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import StreamResult, collect
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock

from ..apps.persist_app import SLOW_TEXT
from ..helpers import ROOT, Server, open_stream

pytestmark = pytest.mark.server

APP = "tests.apps.persist_app:create_app()"
SERVER_CONFIG = {
    "AI_SSE_PERSIST_EVERY": 3,
    "AI_SSE_PERSIST_INTERVAL": 0.1,
    "AI_SSE_DISCONNECT_GRACE": 0.3,
    "AI_SSE_KEEPALIVE": 1,
    # One owner opens 200 streams at once below: far over the per-key connection cap.
    "AI_SSE_MAX_CONNECTIONS_PER_KEY": None,
}


@pytest.fixture(scope="module")
def server(module_gunicorn: Any, database: dict[str, Any]) -> Server:
    return module_gunicorn({**database, **SERVER_CONFIG}, app=APP)  # type: ignore[no-any-return]


def call(server: Server, method: str, path: str, owner: str | None = "alice", **kw: Any) -> Any:
    headers = {"X-Owner": owner} if owner else {}
    return requests.request(method, f"{server.url}{path}", headers=headers, timeout=10, **kw)


def create(server: Server, owner: str | None = "alice", **body: Any) -> str:
    resp = call(server, "POST", "/ai/conversations", owner, json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def ask(server: Server, prompt: str, cid: str | None, owner: str | None = "alice") -> StreamResult:
    headers = {"X-Owner": owner} if owner else {}
    body: dict[str, Any] = {"prompt": prompt}
    if cid is not None:
        body["conversation_id"] = cid
    resp = open_stream(f"{server.url}/ai/stream", method="POST", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return collect(resp.iter_content(chunk_size=None))


def wait_message(
    server: Server,
    cid: str,
    message_id: int,
    until: Callable[[dict[str, Any]], bool] = lambda m: m["status"] != "streaming",
    owner: str = "alice",
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The message once ``until`` holds (polled: the end state is written as the stream ends)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = call(server, "GET", f"/ai/conversations/{cid}", owner).json()["messages"]
        message = next(m for m in messages if m["id"] == message_id)
        if until(message) or time.monotonic() > deadline:
            return message  # type: ignore[no-any-return]
        time.sleep(0.02)


class LiveStream:
    """A stream read bit by bit, with one decoder across reads."""

    def __init__(self, server: Server, prompt: str, cid: str) -> None:
        self.resp = open_stream(
            f"{server.url}/ai/stream",
            method="POST",
            json={"prompt": prompt, "conversation_id": cid},
            headers={"X-Owner": "alice"},
        )
        assert self.resp.status_code == 200, self.resp.text
        self._chunks = self.resp.iter_content(chunk_size=None)
        self._decoder = SSEDecoder()
        self.events: list[ServerSentEvent] = []

    def read(self, count: int | None = None) -> None:
        """Read until ``count`` events arrived (all of them when None)."""
        for chunk in self._chunks:
            self.events.extend(self._decoder.feed(chunk))
            if count is not None and len(self.events) >= count:
                return
        if count is not None:
            raise AssertionError("the stream ended early")

    @property
    def start(self) -> dict[str, Any]:
        return json.loads(self.events[0].data)  # type: ignore[no-any-return]

    @property
    def text(self) -> str:
        return collect(b"".join(e.encode() for e in self.events)).text


def test_turns_are_stored_and_sent_as_context(server: Server) -> None:
    cid = create(server, system="Answer briefly.")
    first = ask(server, "What is SSE?", cid)
    start = first.start
    assert start["conversation_id"] == cid
    assert isinstance(start["message_id"], int)
    assert first.text == "Answer to What is SSE?."
    answer = wait_message(server, cid, start["message_id"])
    assert answer["status"] == "completed"
    assert answer["content"] == first.text
    meta = answer["meta"]
    for key in ("stream_chunks", "stream_duration", "time_to_first_token", "usage"):
        assert meta[key] is not None, key
    assert (meta["model"], meta["provider"], meta["finish_reason"]) == ("fake-1", "fake", "stop")
    assert meta["stream_id"] == start["stream_id"]

    second = ask(server, "And WebSockets?", cid)
    sent = call(server, "GET", "/_test/request", params={"prompt": "And WebSockets?"}).json()
    assert sent == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is SSE?"},
        {"role": "assistant", "content": "Answer to What is SSE?."},
        {"role": "user", "content": "And WebSockets?"},
    ]
    wait_message(server, cid, second.start["message_id"])
    conversation = call(server, "GET", f"/ai/conversations/{cid}").json()
    assert conversation["title"] == "What is SSE?"
    assert [(m["role"], m["status"]) for m in conversation["messages"]] == [
        ("system", "completed"),
        ("user", "completed"),
        ("assistant", "completed"),
        ("user", "completed"),
        ("assistant", "completed"),
    ]


def test_the_provider_adapter_sends_the_history_upstream(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """The same second turn through the real OpenAI adapter, seen from the mock upstream."""
    with OpenAIMock(api_key="test-key") as mock:
        mock.script(MockReply(text="Paris."), MockReply(text="About two million."))
        upstream = {
            "TEST_REAL_PROVIDER": True,
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": mock.base_url,
            "AI_SSE_API_KEY": "test-key",
        }
        server = gunicorn_server({**database, **SERVER_CONFIG, **upstream}, app=APP)
        cid = create(server, system="Be brief.")
        first = ask(server, "Capital of France?", cid)
        assert wait_message(server, cid, first.start["message_id"])["content"] == "Paris."
        assert ask(server, "Population?", cid).text == "About two million."
        assert mock.requests[-1].json["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "Population?"},
        ]


def test_a_stream_without_conversation_stores_nothing(server: Server) -> None:
    before = call(server, "GET", "/ai/conversations").json()["conversations"]
    result = ask(server, "no memory", None)
    assert "conversation_id" not in result.start and "message_id" not in result.start
    assert call(server, "GET", "/ai/conversations").json()["conversations"] == before


def test_failure_mid_stream_keeps_the_partial_text(server: Server) -> None:
    cid = create(server)
    result = ask(server, "fail:5 please", cid)
    assert result.terminal is not None and result.terminal.event == "error"
    message = wait_message(server, cid, result.start["message_id"])
    assert message["status"] == "failed"
    assert result.text == "word0 word1 word2 word3 word4 "
    assert message["content"] == result.text
    assert message["meta"]["error"]["type"] == "provider_error"
    assert message["meta"]["finish_reason"] == "error"


def test_cancel_keeps_the_partial_text(server: Server) -> None:
    cid = create(server)
    live = LiveStream(server, "slow answer", cid)
    live.read(4)
    cancel = call(server, "POST", f"/ai/streams/{live.start['stream_id']}/cancel", json={})
    assert cancel.status_code == 202
    live.read()
    done = [e for e in live.events if e.event == "done"]
    assert json.loads(done[0].data)["finish_reason"] == "cancelled"
    message = wait_message(server, cid, live.start["message_id"])
    assert message["status"] == "cancelled"
    assert message["meta"]["reason"] == "cancelled"
    assert message["content"] == live.text
    assert 0 < len(live.text) < len(SLOW_TEXT) and SLOW_TEXT.startswith(live.text)


def test_client_disconnect_keeps_the_partial_text(server: Server) -> None:
    cid = create(server)
    live = LiveStream(server, "slow to leave", cid)
    live.read(4)
    live.resp.close()
    message = wait_message(server, cid, live.start["message_id"])
    assert message["status"] == "cancelled"
    assert message["meta"]["reason"] == "disconnected"
    assert message["content"] and SLOW_TEXT.startswith(message["content"])
    assert len(message["content"]) < len(SLOW_TEXT)


def test_other_owners_get_404_and_never_the_data(server: Server) -> None:
    cid = create(server, title="Alice's secrets")
    ask(server, "private question", cid)
    for method, kwargs in [("GET", {}), ("PATCH", {"json": {"title": "x"}}), ("DELETE", {})]:
        for owner in ("mallory", None):
            resp = call(server, method, f"/ai/conversations/{cid}", owner, **kwargs)
            assert resp.status_code == 404
            assert resp.json() == {
                "error": {"type": "not_found", "message": "Unknown conversation."}
            }
    stream = open_stream(
        f"{server.url}/ai/stream",
        method="POST",
        json={"prompt": "let me in", "conversation_id": cid},
        headers={"X-Owner": "mallory"},
    )
    assert stream.status_code == 404
    assert stream.json()["error"]["type"] == "not_found"
    listed = call(server, "GET", "/ai/conversations", "mallory").json()["conversations"]
    assert cid not in [c["id"] for c in listed]
    assert call(server, "GET", "/ai/conversations", None).status_code == 403
    mine = call(server, "GET", f"/ai/conversations/{cid}").json()
    assert mine["title"] == "Alice's secrets"
    assert mine["messages"][0]["content"] == "private question"


def test_rename_list_and_delete(server: Server) -> None:
    cid = create(server, owner="bob", title="first")
    renamed = call(server, "PATCH", f"/ai/conversations/{cid}", "bob", json={"title": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "renamed"
    listed = call(server, "GET", "/ai/conversations", "bob").json()["conversations"]
    assert [c["id"] for c in listed] == [cid]
    assert call(server, "DELETE", f"/ai/conversations/{cid}", "bob").status_code == 204
    assert call(server, "GET", f"/ai/conversations/{cid}", "bob").status_code == 404


def test_200_concurrent_streams_all_complete_intact(server: Server) -> None:
    """One gevent worker, 200 streams writing partial text into one database at once."""
    count = 200

    def one(i: int) -> tuple[str, int, str]:
        cid = create(server, owner="crowd")
        result = ask(server, f"question number {i}", cid, owner="crowd")
        assert result.text == f"Answer to question number {i}."
        return cid, result.start["message_id"], result.text

    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    for cid, message_id, text in results:
        message = wait_message(server, cid, message_id, owner="crowd")
        assert (message["status"], message["content"]) == ("completed", text)
    assert "TimeoutError" not in server.output() and "QueuePool limit" not in server.output()


def test_sigkilled_worker_is_reconciled(gunicorn_server: Any, database: dict[str, Any]) -> None:
    server = gunicorn_server({**database, **SERVER_CONFIG}, app=APP)
    cid = create(server)
    live = LiveStream(server, "slow and doomed", cid)
    live.read(6)
    message_id = live.start["message_id"]
    partial = wait_message(server, cid, message_id, until=lambda m: bool(m["content"]))
    assert partial["status"] == "streaming" and partial["content"]

    os.kill(call(server, "GET", "/_test/pid").json(), signal.SIGKILL)
    with pytest.raises(requests.RequestException):
        live.read()  # the connection dies with the worker

    # the respawned worker serves; a young streaming message is left alone at start-up
    left = call(server, "GET", f"/ai/conversations/{cid}").json()["messages"][-1]
    assert left["status"] == "streaming"
    assert left["content"] and SLOW_TEXT.startswith(left["content"])

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update({f"APP_{k}": json.dumps(v) for k, v in database.items()})
    flask = [sys.executable, "-m", "flask", "--app", APP.removesuffix("()"), "ai-sse", "reconcile"]
    young = subprocess.run(flask, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert young.returncode == 0, young.stderr
    assert "Marked 0 " in young.stdout
    forced = subprocess.run(
        [*flask, "--older-than", "0"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert forced.returncode == 0, forced.stderr
    assert "Marked 1 " in forced.stdout

    message = call(server, "GET", f"/ai/conversations/{cid}").json()["messages"][-1]
    assert message["status"] == "failed"
    assert message["meta"]["reason"] == "interrupted"
    assert message["content"] == left["content"]


def test_a_slow_provider_head_ends_the_stored_answer_in_the_right_state(
    gunicorn_server: Any, database: dict[str, Any]
) -> None:
    """The response starts before the provider's status (AI_SSE_KEEPALIVE is 1 s here):
    the stored answer still ends completed, failed, or cancelled when the client left."""
    with OpenAIMock(api_key="test-key") as mock:
        upstream = {
            "TEST_REAL_PROVIDER": True,
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": mock.base_url,
            "AI_SSE_API_KEY": "test-key",
            "AI_SSE_MAX_RETRIES": 0,
        }
        server = gunicorn_server({**database, **SERVER_CONFIG, **upstream}, app=APP)
        cid = create(server)

        mock.script(MockReply(text="Late but whole.", headers_delay=1.5))
        done = ask(server, "slow head", cid)
        assert done.text == "Late but whole."
        message = wait_message(server, cid, done.start["message_id"])
        assert (message["status"], message["content"]) == ("completed", "Late but whole.")

        mock.script(MockReply(status=503, headers_delay=1.5))
        failed = ask(server, "slow failure", cid)
        assert failed.terminal is not None and failed.terminal.event == "error"
        message = wait_message(server, cid, failed.start["message_id"])
        assert message["status"] == "failed"
        assert message["meta"]["error"]["type"] == "provider_error"

        mock.script(MockReply(headers_delay=30))
        live = LiveStream(server, "never mind", cid)
        live.read(1)
        live.resp.close()
        message = wait_message(server, cid, live.start["message_id"])
        assert (message["status"], message["meta"]["reason"]) == ("cancelled", "disconnected")
        assert mock.wait_for(lambda s: s["heads_abandoned"] == 1 and s["heads_pending"] == 0)
