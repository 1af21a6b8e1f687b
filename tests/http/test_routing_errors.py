"""Unknown paths and wrong methods under the prefix answer the JSON error body;
the app's own routes and handlers elsewhere are left alone."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_ai_sse import AISSE

from .sse_client import call

APP = "tests.apps.hardening_app:create_app()"


def make_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(AI_SSE_FAKE_DELAY=0.0, **config)
    AISSE(app)

    @app.get("/mine")
    def mine() -> str:
        return "mine"

    return app


def assert_json_error(resp, status: int, kind: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    error = resp.get_json()["error"]
    assert error["type"] == kind and error["message"]


@pytest.mark.parametrize("path", ["/ai/nope", "/ai/streams", "/ai/", "/ai", "/ai/stream/x/y"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_path_under_the_prefix_is_a_json_404(path: str, method: str) -> None:
    resp = make_app().test_client().open(path, method=method)
    assert_json_error(resp, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/ai/stream", "GET, HEAD, POST, OPTIONS"),
        ("PUT", "/ai/stream", "GET, HEAD, POST, OPTIONS"),
        ("GET", "/ai/ask", "POST, OPTIONS"),
        ("GET", "/ai/streams/abc/cancel", "POST, OPTIONS"),
        ("POST", "/ai/streams/abc", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_under_the_prefix_is_a_json_405_with_allow(
    method: str, path: str, allow: str
) -> None:
    resp = make_app().test_client().open(path, method=method)
    assert_json_error(resp, 405, "method_not_allowed")
    assert resp.headers["Allow"] == allow


def test_automatic_options_lists_only_real_methods() -> None:
    resp = make_app().test_client().options("/ai/stream")
    assert resp.status_code == 200
    assert resp.headers["Allow"] == "GET, HEAD, POST, OPTIONS"


def test_the_routes_still_answer() -> None:
    client = make_app().test_client()
    assert client.get("/ai/stream", query_string={"prompt": "hi"}).status_code == 200
    assert_json_error(client.get("/ai/streams/unknown"), 404, "not_found")
    assert_json_error(client.post("/ai/stream", json={}), 400, "missing_prompt")


def test_the_apps_own_errors_elsewhere_are_untouched() -> None:
    app = make_app()

    @app.errorhandler(404)
    def own_404(error: Exception) -> tuple[str, int]:
        return "own 404", 404

    client = app.test_client()
    resp = client.get("/nope")
    assert resp.status_code == 404 and resp.get_data(as_text=True) == "own 404"
    resp = client.post("/mine")
    assert resp.status_code == 405 and resp.mimetype == "text/html"
    assert client.get("/mine").get_data(as_text=True) == "mine"


def test_a_custom_prefix_is_covered() -> None:
    client = make_app(AI_SSE_URL_PREFIX="/api/llm").test_client()
    assert_json_error(client.get("/api/llm/nope"), 404, "not_found")
    assert_json_error(client.delete("/api/llm/stream"), 405, "method_not_allowed")
    assert client.get("/ai/nope").mimetype == "text/html"


def test_mounted_at_the_root_the_app_keeps_its_404s() -> None:
    """No catch-all at the root: it would take every unknown path of the app."""
    client = make_app(AI_SSE_URL_PREFIX="/").test_client()
    assert client.get("/nope").mimetype == "text/html"
    assert client.get("/stream", query_string={"prompt": "hi"}).status_code == 200


@pytest.mark.server
def test_under_gunicorn(gunicorn_server) -> None:
    server = gunicorn_server({"AI_SSE_MAX_PROMPT_CHARS": 100}, app=APP)
    resp = call("GET", f"{server.url}/ai/nope")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found"
    resp = call("DELETE", f"{server.url}/ai/stream")
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "method_not_allowed"
    assert resp.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    assert call("GET", f"{server.url}/nope").headers["Content-Type"].startswith("text/html")
    # A long prompt within gunicorn's request-line limit: the library's JSON 400.
    resp = call("GET", f"{server.url}/ai/stream", params={"prompt": "x" * 3000})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "too_long"
    # Beyond limit_request_line (4094 bytes) gunicorn answers before any app code runs:
    # 414 with its own HTML page (docs/deployment.rst says so).
    resp = call("GET", f"{server.url}/ai/stream", params={"prompt": "x" * 5000})
    assert resp.status_code == 414
