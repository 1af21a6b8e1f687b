"""Deployment warnings reach the server's error log with their level, through the
``flask_ai_sse`` logger, even where logging is not configured (gunicorn's case)."""

from __future__ import annotations

import pytest

from flask_ai_sse.testing import collect
from tests.helpers import open_stream

pytestmark = pytest.mark.server


def test_warnings_under_gunicorn_carry_their_level(gunicorn_server) -> None:
    server = gunicorn_server({}, workers=2, extra_args=["-k", "sync"])
    for _ in range(2):
        resp = open_stream(f"{server.url}/ai/stream?prompt=x")
        assert collect(resp.iter_content(chunk_size=None)).ended
    log = server.output()
    assert "WARNING in flask_ai_sse: gunicorn serves this app with a sync worker" in log
    assert "WARNING in flask_ai_sse: AI_SSE_STORE is 'memory'" in log
