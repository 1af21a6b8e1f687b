"""The Node tests (tests/js/*.test.mjs: the browser client, and the AI SDK's own chat
transport) against a real gunicorn server."""

from __future__ import annotations

import os
import subprocess

import pytest

from .test_sdks import JS, node

pytestmark = pytest.mark.server


def test_node_suites_against_a_live_server(module_gunicorn):
    server = module_gunicorn(
        {"AI_SSE_FAKE_DELAY": 0.01, "AI_SSE_KEEPALIVE": 0.5, "AI_SSE_DISCONNECT_GRACE": 5}
    )
    done = subprocess.run(
        [node(), "--test", "--test-reporter=tap", "client.test.mjs", "usechat.test.mjs"],
        cwd=JS,
        env={**os.environ, "AI_SSE_URL": server.url},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# skipped 0" in done.stdout and "# fail 0" in done.stdout
