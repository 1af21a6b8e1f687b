"""gunicorn settings for streaming: the gevent worker holds thousands of open streams.

Run from the repository root: ``gunicorn -c examples/chat/gunicorn.conf.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

chdir = str(Path(__file__).resolve().parent)
wsgi_app = "app:create_app()"
bind = os.environ.get("BIND", "127.0.0.1:8000")

# One process per core is plenty: each gevent worker multiplexes its streams.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# Streams open at once per worker; each holds a client socket and an upstream socket.
worker_connections = 2000
# For gevent workers this is the heartbeat timeout, not a request timeout: streams may
# run far longer. A worker blocked this long (CPU-bound) is restarted.
timeout = 30
# On reload/shutdown, running streams get this long to finish before being cut.
graceful_timeout = 120
keepalive = 5
accesslog = "-"
# The default format logs the request line, query string included: a prompt sent as
# ``GET /ai/stream?prompt=...`` would be kept in every access log (and in the logs of any
# proxy in front). Log the method and path only: no query string, for any route.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def when_ready(server: object) -> None:
    host, _, port = bind.rpartition(":")
    print(f"\n  flask-ai-sse demo ready: open http://{host or '127.0.0.1'}:{port}/\n", flush=True)
