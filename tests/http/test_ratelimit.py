"""Point 2: AI_SSE_RATE_LIMIT through Flask-Limiter, the app's own Limiter or an internal one."""

from __future__ import annotations

import pytest
from flask import Flask, request
from flask_limiter import Limiter

from flask_ai_sse import AISSE
from flask_ai_sse.errors import ConfigurationError
from flask_ai_sse.testing import collect

from ..apps.hardening_app import create_app
from .sse_client import call


def app_with(**config: object) -> Flask:
    return create_app({"AI_SSE_FAKE_DELAY": 0.0, **config})


def assert_limited(resp) -> None:
    assert resp.status_code == 429
    assert resp.mimetype == "application/json"
    assert resp.get_json()["error"]["type"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 61


def test_stream_and_ask_share_one_budget_per_owner():
    client = app_with(AI_SSE_RATE_LIMIT="3/minute").test_client()
    alice = {"X-User": "alice"}
    assert collect(client.get("/ai/stream?prompt=a", headers=alice)).ended
    assert client.post("/ai/stream", json={"prompt": "b"}, headers=alice).status_code == 200
    assert client.post("/ai/ask", json={"prompt": "c"}, headers=alice).status_code == 200
    assert_limited(client.post("/ai/ask", json={"prompt": "d"}, headers=alice))
    assert_limited(client.get("/ai/stream?prompt=e", headers=alice))
    # Another owner, and anonymous clients (counted by address), have their own budget.
    assert client.get("/ai/stream?prompt=f", headers={"X-User": "bob"}).status_code == 200
    assert client.get("/ai/stream?prompt=g").status_code == 200


def test_a_reconnect_with_last_event_id_is_not_counted():
    client = app_with(AI_SSE_RATE_LIMIT="1/minute").test_client()
    result = collect(client.get("/ai/stream?prompt=hello"))
    assert_limited(client.get("/ai/stream?prompt=again"))
    resumed = client.get(
        "/ai/stream?prompt=hello", headers={"Last-Event-ID": result.start["stream_id"] + ":1"}
    )
    assert resumed.status_code == 200
    assert collect(resumed).text == result.text
    # A made-up id cannot buy a free generation: it is a 404, not a stream.
    fake = client.get("/ai/stream?prompt=x", headers={"Last-Event-ID": "made-up:1"})
    assert fake.status_code == 404
    # The ask route has no resume, so the header changes nothing there.
    assert_limited(client.post("/ai/ask", json={"prompt": "x"}, headers={"Last-Event-ID": "a:1"}))


def test_off_by_default_and_other_routes_never_limited():
    client = app_with().test_client()
    for _ in range(5):
        assert client.post("/ai/ask", json={"prompt": "x"}).status_code == 200
    app = app_with(AI_SSE_RATE_LIMIT="1/minute", RATELIMIT_DEFAULT="1/minute")
    client = app.test_client()
    for _ in range(3):  # the internal limiter applies neither default nor application limits
        assert client.get("/pid").status_code == 200
    assert "RATELIMIT_ENABLED" not in app.config  # nothing left for the app's own limiter


def test_the_apps_own_limiter_and_its_key_function_are_used():
    app = app_with(AI_SSE_RATE_LIMIT="2/minute", TEST_LIMITER_STORAGE="memory://")
    client = app.test_client()
    same_client = [{"X-Client": "c1", "X-User": user} for user in ("u1", "u2", "u3")]
    assert client.post("/ai/ask", json={"prompt": "x"}, headers=same_client[0]).status_code == 200
    assert client.post("/ai/ask", json={"prompt": "x"}, headers=same_client[1]).status_code == 200
    assert_limited(client.post("/ai/ask", json={"prompt": "x"}, headers=same_client[2]))
    assert (
        client.post("/ai/ask", json={"prompt": "x"}, headers={"X-Client": "c2"}).status_code == 200
    )


def test_a_limiter_not_yet_registered_on_the_app_is_registered(make_app):
    limiter = Limiter(lambda: request.remote_addr or "-", storage_uri="memory://")
    app = make_app(AISSE(limiter=limiter), AI_SSE_RATE_LIMIT="1/minute")
    assert limiter in app.extensions["limiter"]
    client = app.test_client()
    assert client.post("/ai/ask", json={"prompt": "x"}).status_code == 200
    assert_limited(client.post("/ai/ask", json={"prompt": "x"}))


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"AI_SSE_RATE_LIMIT": "twenty a minute"}, "AI_SSE_RATE_LIMIT"),
        ({"AI_SSE_RATE_LIMIT": "1/minute", "AI_SSE_RATE_LIMIT_STRATEGY": "nope"}, "rate limiter"),
        ({"AI_SSE_RATE_LIMIT": "1/minute", "AI_SSE_RATE_LIMIT_STORAGE": "nope://"}, "rate limiter"),
    ],
)
def test_bad_settings_fail_at_start_up(config, match):
    with pytest.raises(ConfigurationError, match=match):
        app_with(**config)


def test_storage_down_is_a_503_not_a_500():
    app = app_with(AI_SSE_RATE_LIMIT="5/minute", AI_SSE_RATE_LIMIT_STORAGE="redis://127.0.0.1:9/0")
    resp = app.test_client().post("/ai/ask", json={"prompt": "x"})
    assert resp.status_code == 503
    assert resp.get_json()["error"]["type"] == "store_unavailable"


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("own_limiter", [True, False], ids=["app-limiter", "internal-limiter"])
def test_limit_is_shared_across_two_gunicorn_processes(gunicorn_server, redis_url, own_limiter):
    config = {"AI_SSE_RATE_LIMIT": "3/minute"}
    if own_limiter:
        config["TEST_LIMITER_STORAGE"] = redis_url
    else:
        config["AI_SSE_RATE_LIMIT_STORAGE"] = redis_url
    app = "tests.apps.hardening_app:create_app()"
    one, two = gunicorn_server(config, app=app), gunicorn_server(config, app=app)
    pids = {call("GET", f"{s.url}/pid").json()["pid"] for s in (one, two)}
    assert len(pids) == 2
    headers = {"X-User": "alice", "X-Client": "alice"}

    def ask(server):
        return call("POST", f"{server.url}/ai/ask", json={"prompt": "x"}, headers=headers)

    assert [ask(s).status_code for s in (one, two, one)] == [200, 200, 200]
    for server in (two, one):
        resp = ask(server)
        assert resp.status_code == 429
        assert resp.json()["error"]["type"] == "rate_limited"
        assert 1 <= int(resp.headers["Retry-After"]) <= 61
    stream = call("GET", f"{two.url}/ai/stream", params={"prompt": "x"}, headers=headers)
    assert stream.status_code == 429
    assert stream.headers["Content-Type"] == "application/json"


def test_own_views_can_spend_from_the_same_budget():
    """What docs/security.rst shows: a shared limit with the scope "ai_sse"."""
    # Built by hand, in the docs' order: the limiter is on the app before the extension.
    app = Flask(__name__)
    app.config.update(AI_SSE_FAKE_DELAY=0.0, AI_SSE_RATE_LIMIT="2/minute")
    limiter = Limiter(lambda: "one-client", app=app, storage_uri="memory://")
    ai = AISSE(app, limiter=limiter)

    @app.post("/chat")
    @limiter.shared_limit("2/minute", scope="ai_sse")
    def chat():
        return ai.ask_stream(request.get_json()["prompt"])

    client = app.test_client()
    assert collect(client.post("/chat", json={"prompt": "x"})).ended
    assert client.post("/ai/ask", json={"prompt": "x"}).status_code == 200
    assert client.post("/chat", json={"prompt": "x"}).status_code == 429
    assert_limited(client.post("/ai/ask", json={"prompt": "x"}))
