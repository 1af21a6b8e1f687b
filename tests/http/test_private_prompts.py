"""The example's gunicorn config keeps prompts out of its access log."""

from __future__ import annotations

import pytest

from flask_ai_sse.testing import collect

from .sse_client import call

SECRET = "my-password-is-hunter2"


@pytest.mark.server
def test_the_example_access_log_has_no_query_strings(gunicorn_server, tmp_path):
    server = gunicorn_server(
        {"AI_SSE_FAKE_DELAY": 0},
        app="app:create_app()",
        extra_args=["-c", "examples/chat/gunicorn.conf.py", "--chdir", "examples/chat"],
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"},
    )
    resp = call("GET", f"{server.url}/ai/stream", params={"prompt": SECRET})
    assert resp.status_code == 200
    assert SECRET in collect(resp.content).text  # the fake provider echoes it
    served = call("GET", f"{server.url}/")
    assert served.status_code == 200
    log = server.output()
    assert '"GET /ai/stream HTTP/1.1" 200' in log  # the access log is on...
    assert SECRET not in log and "prompt=" not in log  # ...and keeps no query string
