"""Point 4: the authorize hook, owner-only streams, and the app's own decorators."""

from __future__ import annotations

import pytest

from flask_ai_sse.engine import Engine
from flask_ai_sse.testing import collect

from ..helpers import open_stream
from .sse_client import LiveStream, call

pytestmark = pytest.mark.server
APP = "tests.apps.hardening_app:create_app()"


@pytest.fixture(scope="module")
def server(module_gunicorn):
    return module_gunicorn(
        {"AI_SSE_FAKE_RESPONSE": "{prompt}", "AI_SSE_FAKE_DELAY": 0.02, "AI_SSE_KEEPALIVE": 0.5},
        app=APP,
    )


def test_stream_ids_are_unguessable():
    ids = {Engine.new_stream_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) >= 22 for i in ids)  # 16 random bytes: 128 bits, urlsafe base64


def start(server, user: str | None, prompt: str = "word " * 200):
    headers = {"X-User": user} if user else {}
    resp = open_stream(f"{server.url}/ai/stream", params={"prompt": prompt}, headers=headers)
    assert resp.status_code == 200
    live = LiveStream(resp)
    return live, live.stream_id


@pytest.mark.parametrize(("owner", "other"), [("alice", "mallory"), ("alice", None), (None, "eve")])
def test_another_owners_stream_is_a_404_everywhere(server, owner, other):
    resp, stream_id = start(server, owner)
    try:
        as_other = {"X-User": other} if other else {}
        unknown = call("GET", f"{server.url}/ai/streams/unknown-id", headers=as_other)
        probes = [
            call("GET", f"{server.url}/ai/streams/{stream_id}", headers=as_other),
            call(
                "GET",
                f"{server.url}/ai/streams/{stream_id}",
                params={"last_event_id": f"{stream_id}:1"},
                headers=as_other,
            ),
            call(
                "GET",
                f"{server.url}/ai/stream",
                params={"prompt": "x"},
                headers={**as_other, "Last-Event-ID": f"{stream_id}:1"},
            ),
            call(
                "POST",
                f"{server.url}/ai/stream",
                json={"prompt": "x"},
                headers={**as_other, "Last-Event-ID": f"{stream_id}:2"},
            ),
            call("POST", f"{server.url}/ai/streams/{stream_id}/cancel", headers=as_other),
        ]
        for probe in probes:
            assert probe.status_code == 404
            # Same answer as for a stream that does not exist: nothing tells them apart.
            assert probe.json() == unknown.json()
        as_owner = {"X-User": owner} if owner else {}
        attached = open_stream(
            f"{server.url}/ai/streams/{stream_id}",
            headers={**as_owner, "Last-Event-ID": f"{stream_id}:1"},
        )
        assert attached.status_code == 200
        attached.close()
        cancel = call("POST", f"{server.url}/ai/streams/{stream_id}/cancel", headers=as_owner)
        assert cancel.status_code == 202
        result = resp.rest()
        assert result.terminal is not None
        assert result.terminal.json()["finish_reason"] == "cancelled"
    finally:
        resp.close()


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/ai/stream?prompt=x", None),
        ("POST", "/ai/stream", {"prompt": "x"}),
        ("POST", "/ai/ask", {"prompt": "x"}),
        ("GET", "/ai/streams/some-id", None),
        ("POST", "/ai/streams/some-id/cancel", None),
    ],
)
def test_the_hook_may_refuse_with_a_json_401_or_403(server, status, method, path, body):
    resp = call(method, f"{server.url}{path}", json=body, headers={"X-User": f"!{status}"})
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["type"] in ("unauthorized", "forbidden")


def test_the_blueprint_behind_the_apps_own_decorators(gunicorn_server):
    server = gunicorn_server(
        {"TEST_LOGIN_REQUIRED": True, "AI_SSE_RATE_LIMIT": "1/minute"}, app=APP
    )
    for _ in range(3):  # refused before the rate limit: these cost nothing
        resp = call("GET", f"{server.url}/ai/stream", params={"prompt": "x"})
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "unauthorized"
    for path in ("/ai/streams/x", "/ai/streams/x/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        assert call(method, f"{server.url}{path}").status_code == 401
    ok = call("GET", f"{server.url}/ai/stream", params={"prompt": "x"}, headers={"X-Login": "1"})
    assert ok.status_code == 200
    assert collect(ok.content).ended
    again = call("POST", f"{server.url}/ai/ask", json={"prompt": "x"}, headers={"X-Login": "1"})
    assert again.status_code == 429
