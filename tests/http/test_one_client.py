"""One greedy or hostile client: caps on open connections, the attach route's rate
limit, cross-site refusals, the ``GET /stream`` policy and required owners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flask_ai_sse import AISSE
from flask_ai_sse._slots import MemorySlots
from flask_ai_sse.errors import ConfigurationError
from flask_ai_sse.testing import FakeProvider, FakeReply

from ..helpers import make_app, open_stream, wait_until
from .sse_client import LiveStream, call

APP = "tests.apps.hardening_app:create_app()"
LONG = "word " * 500  # 10 s of tokens at 20 ms unless stopped
FOREIGN = "https://evil.example"


def assert_json_error(resp: Any, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["type"] == kind


# -- per-client connection caps ----------------------------------------------------------

CAPPED = {
    "AI_SSE_MAX_CONNECTIONS_PER_KEY": 3,
    "AI_SSE_FAKE_RESPONSE": "{prompt}",
    "AI_SSE_FAKE_DELAY": 0.02,
    "AI_SSE_KEEPALIVE": 0.2,  # the server notices closed connections within a keepalive
    "AI_SSE_DISCONNECT_GRACE": 30,
}


def start(server: Any, user: str = "alice", prompt: str = LONG) -> requests.Response:
    return open_stream(
        f"{server.url}/ai/stream", method="POST", json={"prompt": prompt}, headers={"X-User": user}
    )


def attach(server: Any, stream_id: str, user: str = "alice", **headers: str) -> requests.Response:
    return open_stream(f"{server.url}/ai/streams/{stream_id}", headers={"X-User": user, **headers})


@pytest.mark.server
def test_streams_and_attaches_share_one_cap_per_key(gunicorn_server):
    server = gunicorn_server(CAPPED, app=APP)
    first = start(server)
    assert first.status_code == 200
    live = LiveStream(first)  # kept: a dropped LiveStream closes its connection
    stream_id = live.stream_id
    held = [first, attach(server, stream_id), attach(server, stream_id)]
    assert [r.status_code for r in held] == [200, 200, 200]
    # The fourth connection of alice's, whatever it is, is refused before it costs anything.
    refused = [
        attach(server, stream_id),
        attach(server, stream_id, **{"Last-Event-ID": f"{stream_id}:1"}),  # a reconnect too
        start(server, prompt="x"),
        open_stream(f"{server.url}/ai/stream?prompt=x", headers={"X-User": "alice"}),
    ]
    for resp in refused:
        assert_json_error(resp, 429, "too_many_connections")
        assert int(resp.headers["Retry-After"]) >= 1
    # Another user is served at once: one client's greed does not make others wait.
    bob = start(server, user="bob", prompt="hello bob")
    assert bob.status_code == 200
    assert LiveStream(bob).rest().text == "hello bob"
    # Closing one frees its place (once the server notices, at the next keepalive).
    held.pop().close()

    def admitted() -> bool:
        resp = attach(server, stream_id)
        if resp.status_code == 429:
            return False
        assert resp.status_code == 200
        held.append(resp)
        return True

    wait_until(admitted)
    for resp in held:
        resp.close()


@pytest.mark.server
@pytest.mark.redis
def test_the_cap_is_counted_in_redis_across_processes(gunicorn_server, redis_url):
    config = {**CAPPED, "AI_SSE_MAX_CONNECTIONS_PER_KEY": 2, "AI_SSE_STORE": redis_url}
    one, two = gunicorn_server(config, app=APP), gunicorn_server(config, app=APP)
    first = LiveStream(start(one))  # kept: a dropped LiveStream closes its connection
    stream_id = first.stream_id
    second = attach(two, stream_id)  # the Redis store lets the other process attach
    assert second.status_code == 200
    for server in (one, two):
        assert_json_error(attach(server, stream_id), 429, "too_many_connections")
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard("ai_sse:connections:owner:alice") == 2
        second.close()
        first.close()
        wait_until(lambda: client.zcard("ai_sse:connections:owner:alice") == 0)
    finally:
        client.close()


def test_the_cap_is_on_by_default_and_can_be_turned_off():
    connections = make_app().extensions["ai_sse"].guards.connections
    assert isinstance(connections, MemorySlots) and connections.limit == 32
    app = make_app(AI_SSE_MAX_CONNECTIONS_PER_KEY=None)
    assert app.extensions["ai_sse"].guards.connections is None
    with pytest.raises(ConfigurationError, match="AI_SSE_MAX_CONNECTIONS_PER_KEY"):
        make_app(AI_SSE_MAX_CONNECTIONS_PER_KEY=0)


def test_a_connection_is_freed_when_its_answer_is_not_a_stream():
    """A 404 attach holds nothing; a served stream holds its place until its body closes."""
    ai = AISSE(provider=FakeProvider(script=[FakeReply(text="hi", delay=0)]))
    app = make_app(ai, AI_SSE_MAX_CONNECTIONS_PER_KEY=1, AI_SSE_KEEPALIVE=5)
    client = app.test_client()
    connections = app.extensions["ai_sse"].guards.connections
    for _ in range(3):
        assert client.get("/ai/streams/nope").status_code == 404
    assert connections.count("addr:127.0.0.1") == 0
    resp = client.get("/ai/stream?prompt=x", buffered=False)
    assert connections.count("addr:127.0.0.1") == 1
    assert client.get("/ai/streams/nope").status_code == 429
    resp.get_data()
    resp.close()
    assert connections.count("addr:127.0.0.1") == 0


# -- the attach route is rate limited, a reconnect stays free ---------------------------


@pytest.mark.server
def test_attach_is_rate_limited_but_a_reconnect_to_its_stream_is_free(gunicorn_server):
    config = {**CAPPED, "AI_SSE_RATE_LIMIT": "2/minute", "AI_SSE_MAX_CONNECTIONS_PER_KEY": 10}
    server = gunicorn_server(config, app=APP)
    first = LiveStream(start(server))  # 1 of 2
    stream_id = first.stream_id
    other = attach(server, stream_id)  # 2 of 2
    assert other.status_code == 200
    other.close()
    assert_json_error(attach(server, stream_id), 429, "rate_limited")
    # Naming another stream in last_event_id does not make an attach a reconnect.
    elsewhere = {"last_event_id": "other-stream:3"}
    resp = requests.get(
        f"{server.url}/ai/streams/{stream_id}", params=elsewhere, headers={"X-User": "alice"}
    )
    assert_json_error(resp, 429, "rate_limited")
    for _ in range(3):  # reconnects: free, as EventSource makes them by itself
        again = attach(server, stream_id, **{"Last-Event-ID": f"{stream_id}:1"})
        assert again.status_code == 200
        again.close()
    first.close()


# -- cross-site state changes -----------------------------------------------------------


def csrf_app(**config: Any) -> Flask:
    ai = AISSE(provider=FakeProvider(script=[FakeReply(text="hi", delay=0)]))
    return make_app(ai, AI_SSE_KEEPALIVE=5, **config)


FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", None]


@pytest.mark.parametrize("content_type", FORM_TYPES)
@pytest.mark.parametrize("origin", [FOREIGN, "null", None])
@pytest.mark.parametrize("path", ["/ai/stream", "/ai/ask", "/ai/streams/some-id/cancel"])
def test_a_post_a_page_could_forge_is_refused(path, origin, content_type):
    headers = {"Origin": origin} if origin else {}
    if content_type:
        headers["Content-Type"] = content_type
    resp = csrf_app().test_client().post(path, data="prompt=x", headers=headers)
    assert resp.status_code == 403
    assert resp.json["error"]["type"] == "cross_site_request"


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},  # a body only a preflighted request can send
        {"X-Requested-With": "fetch"},  # a header only a preflighted request can send
        {"Origin": "http://localhost"},  # this site's own page (the test client's host)
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        {"Origin": "https://app.example", "Content-Type": "text/plain"},  # listed in CORS
    ],
)
def test_a_post_a_page_could_not_forge_passes(headers):
    app = csrf_app(AI_SSE_CORS_ORIGINS=["https://app.example"])
    resp = app.test_client().post("/ai/streams/some-id/cancel", headers=headers)
    assert resp.status_code == 404  # past the check: the stream does not exist


def test_a_wildcard_cors_policy_vouches_for_no_form_post():
    app = csrf_app(AI_SSE_CORS_ORIGINS="*")
    headers = {"Origin": FOREIGN, "Content-Type": "text/plain"}
    assert app.test_client().post("/ai/streams/x/cancel", headers=headers).status_code == 403


def test_conversation_routes_refuse_cross_site_posts(tmp_path: Path):
    from ..apps.persist_app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite'}"})
    with app.app_context():
        app.extensions["test_db"].create_all()
    client = app.test_client()
    owner = {"X-Owner": "alice"}
    form = {**owner, "Origin": FOREIGN, "Content-Type": "application/x-www-form-urlencoded"}
    assert client.post("/ai/conversations", headers=form, data="title=x").status_code == 403
    created = client.post("/ai/conversations", headers=owner, json={"title": "mine"})
    assert created.status_code == 201
    cid = created.json["id"]
    # PATCH and DELETE are never simple requests: a browser preflights them (and the
    # preflight fails without CORS), so they need no more than the method.
    renamed = client.patch(f"/ai/conversations/{cid}", headers=owner, json={"title": "t"})
    assert renamed.status_code == 200
    assert client.delete(f"/ai/conversations/{cid}", headers=owner).status_code == 204


@pytest.mark.server
def test_cross_site_form_posts_are_refused_by_the_server(gunicorn_server):
    server = gunicorn_server({**CAPPED, "AI_SSE_MAX_CONNECTIONS_PER_KEY": 10}, app=APP)
    live = LiveStream(start(server))
    stream_id = live.stream_id
    cancel = f"{server.url}/ai/streams/{stream_id}/cancel"
    forged = {"X-User": "alice", "Origin": FOREIGN, "Content-Type": "text/plain"}
    for url in (cancel, f"{server.url}/ai/stream", f"{server.url}/ai/ask"):
        assert_json_error(call("POST", url, headers=forged, data="x"), 403, "cross_site_request")
    # The page's own cancel (fetch POST from this origin, no body) is served.
    own = call("POST", cancel, headers={"X-User": "alice", "Origin": server.url})
    assert own.status_code == 202
    assert live.rest().terminal.json()["finish_reason"] == "cancelled"


# -- GET /stream: on, off, or same-origin only -------------------------------------------


@pytest.mark.server
def test_get_stream_policies(gunicorn_server):
    on = gunicorn_server({"AI_SSE_FAKE_DELAY": 0}, app=APP)
    same = gunicorn_server(
        {
            "AI_SSE_FAKE_DELAY": 0,
            "AI_SSE_ALLOW_GET_STREAM": "same-origin",
            "AI_SSE_CORS_ORIGINS": ["https://app.example"],
        },
        app=APP,
    )
    off = gunicorn_server({"AI_SSE_FAKE_DELAY": 0, "AI_SSE_ALLOW_GET_STREAM": False}, app=APP)
    img = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"}  # <img src=...>
    assert call("GET", f"{on.url}/ai/stream?prompt=x", headers=img).status_code == 200
    assert_json_error(
        call("GET", f"{same.url}/ai/stream?prompt=x", headers=img), 403, "cross_site_request"
    )
    assert_json_error(call("GET", f"{same.url}/ai/stream?prompt=x"), 403, "cross_site_request")
    for headers in ({"Sec-Fetch-Site": "same-origin"}, {"Origin": "https://app.example"}):
        assert call("GET", f"{same.url}/ai/stream?prompt=x", headers=headers).status_code == 200
    for headers in ({}, {"Last-Event-ID": "abc:1"}):
        resp = call("GET", f"{off.url}/ai/stream?prompt=x", headers=headers)
        assert_json_error(resp, 405, "method_not_allowed")
        assert resp.headers["Allow"] == "POST"
    assert call("POST", f"{off.url}/ai/stream", json={"prompt": "x"}).status_code == 200


def test_allow_get_stream_is_checked_at_start_up():
    with pytest.raises(ConfigurationError, match="AI_SSE_ALLOW_GET_STREAM"):
        make_app(AI_SSE_ALLOW_GET_STREAM="same-site")


# -- anonymous callers refused by one key ------------------------------------------------


@pytest.mark.server
def test_require_owner_refuses_anonymous_callers(gunicorn_server):
    server = gunicorn_server({"AI_SSE_FAKE_DELAY": 0, "AI_SSE_REQUIRE_OWNER": True}, app=APP)
    json_call = {"X-Requested-With": "t"}
    for method, path, body in [
        ("GET", "/ai/stream?prompt=x", None),
        ("POST", "/ai/stream", {"prompt": "x"}),
        ("POST", "/ai/ask", {"prompt": "x"}),
        ("GET", "/ai/streams/some-id", None),
        ("POST", "/ai/streams/some-id/cancel", None),
    ]:
        # The hook returns None (no X-User): anonymous, refused.
        resp = call(method, f"{server.url}{path}", json=body, headers=json_call)
        assert_json_error(resp, 401, "unauthorized")
    signed_in = call("POST", f"{server.url}/ai/ask", json={"prompt": "x"}, headers={"X-User": "a"})
    assert signed_in.status_code == 200


def test_require_owner_without_any_hook_refuses_everyone():
    app = csrf_app(AI_SSE_REQUIRE_OWNER=True)
    resp = app.test_client().post("/ai/ask", json={"prompt": "x"})
    assert resp.status_code == 401
    assert resp.json["error"]["type"] == "unauthorized"
