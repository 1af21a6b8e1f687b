"""Point 5: CORS, off by default; the pure policy, its Flask glue, and a real preflight."""

from __future__ import annotations

import re

import pytest

from flask_ai_sse._cors import CorsPolicy
from flask_ai_sse.errors import ConfigurationError

from .sse_client import call

SITE = "https://app.example.com"


def policy(origins: object = SITE, **kwargs: object) -> CorsPolicy:
    made = CorsPolicy.from_config(origins, **kwargs)
    assert made is not None
    return made


class TestPolicy:
    def test_off_when_no_origins(self):
        assert CorsPolicy.from_config(None) is None
        assert CorsPolicy.from_config([]) is None
        assert CorsPolicy.from_config("") is None

    def test_only_listed_origins_are_echoed(self):
        p = policy([SITE, "http://localhost:5173"])
        assert p.allow_origin(SITE) == SITE
        assert p.allow_origin("HTTPS://APP.EXAMPLE.COM") == "HTTPS://APP.EXAMPLE.COM"
        for other in ("https://evil.example.com", "https://app.example.com.evil.io", "null", None):
            assert p.allow_origin(other) is None

    def test_patterns_must_match_the_whole_origin(self):
        p = policy([re.compile(r"https://[a-z0-9-]+\.example\.com")])
        assert p.allow_origin("https://pr-12.example.com") == "https://pr-12.example.com"
        assert p.allow_origin("https://x.example.com.evil.io") is None

    def test_star_without_credentials(self):
        headers, vary = policy("*").actual_headers("https://anywhere.io")
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in headers
        assert vary == ("Origin",)

    def test_credentials_echo_the_origin_and_say_true(self):
        headers, _ = policy(SITE, credentials=True).actual_headers(SITE)
        assert headers["Access-Control-Allow-Origin"] == SITE
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert headers["Access-Control-Expose-Headers"] == "Retry-After"

    @pytest.mark.parametrize(
        ("origins", "kwargs", "match"),
        [
            ("*", {"credentials": True}, "CREDENTIALS"),
            ([SITE, "*"], {"credentials": True}, "CREDENTIALS"),
            ("https://app.example.com/", {}, "trailing slash"),
            ("app.example.com", {}, "not an origin"),
            ("null", {}, "null"),
            (SITE, {"credentials": "yes"}, "CREDENTIALS"),
            (SITE, {"methods": ["GET", "PO ST"]}, "METHODS"),
            (SITE, {"headers": ["X-Ok", "Bad:Header"]}, "HEADERS"),
            (SITE, {"max_age": -1}, "MAX_AGE"),
        ],
    )
    def test_unsafe_or_broken_configs_are_refused(self, origins, kwargs, match):
        with pytest.raises(ConfigurationError, match=match):
            CorsPolicy.from_config(origins, **kwargs)

    def test_preflight(self):
        p = policy(SITE, headers=["Content-Type", "Authorization"], max_age=120)
        headers, vary = p.preflight_headers(SITE, "POST", "content-type, last-event-id")
        assert headers["Access-Control-Allow-Origin"] == SITE
        assert headers["Access-Control-Allow-Methods"] == "GET, POST"
        allowed = headers["Access-Control-Allow-Headers"].split(", ")
        assert allowed == ["Content-Type", "Authorization", "Last-Event-ID"]
        assert headers["Access-Control-Max-Age"] == "120"
        assert "Origin" in vary and "Access-Control-Request-Headers" in vary
        for origin, method, asked in [
            ("https://evil.io", "POST", "content-type"),
            (SITE, "DELETE", ""),
            (SITE, "POST", "content-type, x-secret"),
        ]:
            refused, _ = p.preflight_headers(origin, method, asked)
            assert refused == {}

    def test_star_headers_reflect_what_is_asked(self):
        p = policy(SITE, headers="*", credentials=True)
        headers, _ = p.preflight_headers(SITE, "POST", "X-Csrf-Token, Content-Type")
        assert headers["Access-Control-Allow-Headers"] == "X-Csrf-Token, Content-Type"


def test_off_by_default_no_cors_headers(make_app):
    client = make_app().test_client()
    resp = client.get("/ai/stream?prompt=x", headers={"Origin": SITE})
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = client.options(
        "/ai/stream", headers={"Origin": SITE, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in pre.headers


def test_blueprint_answers_carry_the_headers_errors_included(make_app):
    app = make_app(AI_SSE_CORS_ORIGINS=[SITE], AI_SSE_CORS_CREDENTIALS=True)

    @app.get("/elsewhere")
    def elsewhere() -> str:
        return "not the blueprint's"

    client = app.test_client()
    ok = client.get("/ai/stream?prompt=x", headers={"Origin": SITE})
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in ok.headers["Vary"]
    bad = client.post("/ai/stream", json={}, headers={"Origin": SITE})
    assert bad.status_code == 400
    assert bad.headers["Access-Control-Allow-Origin"] == SITE  # the page can read the error
    missing = client.get("/ai/streams/nope", headers={"Origin": SITE})
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == SITE
    foreign = client.get("/ai/stream?prompt=x", headers={"Origin": "https://evil.io"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    assert "Origin" in foreign.headers["Vary"]
    # The app's other routes are none of this extension's business.
    assert (
        "Access-Control-Allow-Origin"
        not in client.get("/elsewhere", headers={"Origin": SITE}).headers
    )


def test_bad_cors_config_fails_at_start_up(make_app):
    with pytest.raises(ConfigurationError):
        make_app(AI_SSE_CORS_ORIGINS="*", AI_SSE_CORS_CREDENTIALS=True)


@pytest.mark.server
def test_preflight_and_stream_over_gunicorn(gunicorn_server):
    server = gunicorn_server(
        {
            "AI_SSE_CORS_ORIGINS": [SITE],
            "AI_SSE_CORS_HEADERS": ["Content-Type", "Authorization"],
            "AI_SSE_CORS_CREDENTIALS": True,
            "AI_SSE_CORS_MAX_AGE": 300,
            "AI_SSE_RATE_LIMIT": "1/minute",
        }
    )
    pre = call(
        "OPTIONS",
        f"{server.url}/ai/stream",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization,last-event-id",
        },
    )
    assert pre.status_code in (200, 204)
    assert pre.headers["Access-Control-Allow-Origin"] == SITE
    assert pre.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "Last-Event-ID" in pre.headers["Access-Control-Allow-Headers"]
    assert pre.headers["Access-Control-Max-Age"] == "300"
    assert {"origin", "access-control-request-method"} <= {
        v.strip().lower() for v in pre.headers["Vary"].split(",")
    }
    # A preflight spends nothing: the one allowed stream is still there.
    stream = call("POST", f"{server.url}/ai/stream", json={"prompt": "x"}, headers={"Origin": SITE})
    assert stream.status_code == 200
    assert stream.headers["Access-Control-Allow-Origin"] == SITE
    assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    limited = call("POST", f"{server.url}/ai/ask", json={"prompt": "x"}, headers={"Origin": SITE})
    assert limited.status_code == 429
    assert limited.headers["Access-Control-Allow-Origin"] == SITE
    assert "Retry-After" in limited.headers["Access-Control-Expose-Headers"]
    refused = call(
        "OPTIONS",
        f"{server.url}/ai/stream",
        headers={"Origin": "https://evil.io", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in refused.headers
