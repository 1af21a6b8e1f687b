"""Point 1: every bad input is a 4xx JSON error with a stable type, before any stream."""

from __future__ import annotations

import pytest

from flask_ai_sse._validation import Limits, validate_query
from flask_ai_sse.errors import ConfigurationError
from flask_ai_sse.testing import collect

from .sse_client import call


@pytest.fixture
def client(make_app):
    return make_app(
        AI_SSE_MAX_PROMPT_CHARS=50, AI_SSE_MAX_MESSAGE_CHARS=50, AI_SSE_MAX_MESSAGES=3
    ).test_client()


def assert_error(resp, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    error = resp.get_json()["error"]
    assert error["type"] == kind
    assert isinstance(error["message"], str) and error["message"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"prompt": "x" * 51}, "too_long"),
        ({"system": "s" * 51, "prompt": "x"}, "too_long"),
        ({"messages": [{"role": "user", "content": "x" * 51}]}, "too_long"),
        ({"messages": [{"role": "user", "content": "x"}] * 4}, "too_many_messages"),
        ({"messages": "hello"}, "invalid_type"),
        ({"messages": [["user", "x"]]}, "invalid_type"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "invalid_role"),
        ({"messages": [{"role": "assistant", "content": ""}]}, "missing_prompt"),
        ({"messages": [{"role": "user", "content": "   "}]}, "empty_value"),
        ({"prompt": "x", "temperature": -0.1}, "out_of_range"),
        ({"prompt": "x", "temperature": 2.5}, "out_of_range"),
        ({"prompt": "x", "temperature": True}, "invalid_type"),
        ({"prompt": "x", "temperature": 10**400}, "invalid_type"),
        ({"prompt": "x", "max_tokens": 0}, "out_of_range"),
        ({"prompt": "x", "max_tokens": 1.5}, "invalid_type"),
        ({"prompt": "x", "max_tokens": 10**7}, "out_of_range"),
        ({"prompt": "x", "model": 3}, "invalid_type"),
        ({"prompt": "x", "model": "../../v1/files"}, "invalid_model"),
        ({"prompt": "x", "model": "gpt 4"}, "invalid_model"),
        ({"prompt": "x", "model": "gpt-4o"}, "model_not_allowed"),
        ({"prompt": "x", "conversation_id": True}, "invalid_type"),
        ({"prompt": "x", "conversation_id": "c" * 129}, "too_long"),
        ("just a string", "invalid_body"),
        ([], "invalid_body"),
        (0, "invalid_body"),
    ],
)
@pytest.mark.parametrize("route", ["/ai/stream", "/ai/ask"])
def test_bad_bodies_have_a_stable_type(client, route, body, kind):
    assert_error(client.post(route, json=body), 400, kind)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("", "missing_prompt"),
        ("prompt=", "empty_value"),
        ("prompt=x&temperature=hot", "invalid_type"),
        ("prompt=x&temperature=nan", "invalid_type"),
        ("prompt=x&temperature=inf", "invalid_type"),
        ("prompt=x&temperature=1_0", "invalid_type"),
        ("prompt=x&temperature=%201", "invalid_type"),
        ("prompt=x&temperature=3", "out_of_range"),
        ("prompt=x&max_tokens=1e3", "invalid_type"),
        ("prompt=x&max_tokens=" + "9" * 5000, "invalid_type"),
        ("prompt=x&max_tokens=-1", "out_of_range"),
        ("prompt=a&prompt=b", "duplicate_parameter"),
        ("prompt=x&model=other", "model_not_allowed"),
        ("prompt=" + "x" * 51, "too_long"),
    ],
)
def test_bad_queries_have_a_stable_type(client, query, kind):
    assert_error(client.get(f"/ai/stream?{query}"), 400, kind)


def test_good_query_numbers_are_parsed(client):
    resp = client.get("/ai/stream?prompt=hi&temperature=0.7&max_tokens=64&model=fake-1")
    assert resp.status_code == 200
    assert collect(resp).ended
    params = validate_query(
        {"prompt": "x", "temperature": "1e0", "max_tokens": "7"}, Limits(), "fake-1"
    )
    assert (params.temperature, params.max_tokens) == (1.0, 7)


def test_body_size_limit_counts_bytes_not_characters(make_app):
    client = make_app(AI_SSE_MAX_BODY_BYTES=100).test_client()
    body = '{"prompt": "' + "é" * 45 + '"}'  # 45 characters, 90 bytes of UTF-8 + 14
    resp = client.post("/ai/stream", data=body.encode(), content_type="application/json")
    assert_error(resp, 413, "payload_too_large")


def test_unknown_fields_are_ignored_not_forwarded(client):
    resp = client.post("/ai/ask", json={"prompt": "hi", "api_key": "x", "base_url": "http://evil"})
    assert resp.status_code == 200


class TestModelAllowList:
    """Clients choosing the model spend the app's money: opt-in, and the default always works."""

    def test_default_allows_only_the_configured_model(self, make_app):
        client = make_app(AI_SSE_MODEL="cheap-1").test_client()
        assert client.post("/ai/ask", json={"prompt": "x", "model": "cheap-1"}).status_code == 200
        assert client.post("/ai/ask", json={"prompt": "x"}).get_json()["model"] == "cheap-1"
        resp = client.post("/ai/ask", json={"prompt": "x", "model": "expensive-9"})
        assert_error(resp, 400, "model_not_allowed")

    def test_a_list_adds_models(self, make_app):
        client = make_app(AI_SSE_ALLOWED_MODELS=["mini", "maxi"]).test_client()
        for model in ("mini", "maxi", "fake-1"):
            resp = client.post("/ai/ask", json={"prompt": "x", "model": model})
            assert resp.get_json()["model"] == model
        assert_error(client.get("/ai/stream?prompt=x&model=other"), 400, "model_not_allowed")

    def test_star_allows_any_well_formed_name(self, make_app):
        client = make_app(AI_SSE_ALLOWED_MODELS="*").test_client()
        resp = client.post("/ai/ask", json={"prompt": "x", "model": "meta-llama/Llama-3:8b"})
        assert resp.status_code == 200
        resp = client.post("/ai/ask", json={"prompt": "x", "model": "a/../b"})
        assert_error(resp, 400, "invalid_model")

    def test_the_python_api_is_the_apps_own_choice(self, make_app):
        app = make_app()
        with app.test_request_context():
            assert (
                app.extensions["ai_sse"].extension.ask("x", model="any-model").model == "any-model"
            )

    @pytest.mark.parametrize("value", [["ok", "not ok"], [3]])
    def test_bad_lists_fail_at_start_up(self, value, make_app):
        with pytest.raises(ConfigurationError, match="AI_SSE_ALLOWED_MODELS"):
            make_app(AI_SSE_ALLOWED_MODELS=value)


@pytest.mark.parametrize("key", ["AI_SSE_MAX_BODY_BYTES", "AI_SSE_MAX_MESSAGES"])
@pytest.mark.parametrize("value", [0, -5, "10", True])
def test_limits_must_be_positive_ints(key, value, make_app):
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


@pytest.mark.server
def test_new_types_over_gunicorn(gunicorn_server):
    server = gunicorn_server({"AI_SSE_MAX_MESSAGES": 2})
    url = f"{server.url}/ai/stream"
    cases = [
        (dict(params={"prompt": "x", "model": "gpt-4o"}), "model_not_allowed"),
        (dict(params=[("prompt", "a"), ("prompt", "b")]), "duplicate_parameter"),
        (dict(params={"prompt": "x", "max_tokens": "1_000"}), "invalid_type"),
        (
            dict(method="POST", json={"messages": [{"role": "user", "content": "x"}] * 3}),
            "too_many_messages",
        ),
    ]
    for kwargs, kind in cases:
        resp = call(kwargs.pop("method", "GET"), url, **kwargs)
        assert resp.status_code == 400
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json()["error"]["type"] == kind
