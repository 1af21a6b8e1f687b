"""Regression: cancelling from another greenlet really closes the upstream socket.

Closing a ``requests`` response from a greenlet other than the one reading it
fails ("reentrant call") and leaves the socket open. This runs the cancel path
as the gevent worker does (patched, greenlets), in a subprocess so the patching
stays out of the test process, and checks it from the mock's side.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
from gevent import monkey; monkey.patch_all()
import gevent, time
from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.providers import ProviderConfig, create_provider
from flask_ai_sse.testing.upstream import FORMATS, MockReply

for name, mock_class in sorted(FORMATS.items()):
    with mock_class() as mock:
        mock.script(MockReply(text="a b c d", stall=60, at=2))
        provider = create_provider(
            ProviderConfig(name, api_key="k", base_url=mock.base_url, read_timeout=30)
        )
        for _ in range(20):
            stream = provider.open(ChatRequest([{"role": "user", "content": "x"}], model="m"))
            texts = []
            reader = gevent.spawn(lambda: [texts.append(c) for c in stream if c.kind == "text"])
            with gevent.Timeout(5):
                while len(texts) < 2:
                    gevent.sleep(0.001)
            started = time.monotonic()
            stream.abort()  # from this greenlet, while the reader is blocked in recv()
            reader.join(5)
            assert reader.successful(), reader.exception
            # 2 s against a 30 s read timeout and a 60 s stall: only the abort ends it in time,
            # and an abort takes milliseconds, so a loaded machine stays far inside the bound.
            assert stream.closed and time.monotonic() - started < 2
        assert mock.wait_for_open_streams(0, 5), mock.stats()
        assert mock.stats()["streams_client_closed"] == 20
        provider.close()
print("ok")
"""


def test_abort_from_another_greenlet_closes_upstream_sockets() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
