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
# On reload/shutdown, running streams get this long to finish; with the hooks below,
# generations nobody reads too, and what cannot finish ends with a clear error.
graceful_timeout = 120
keepalive = 5
accesslog = "-"


def when_ready(server: object) -> None:
    host, _, port = bind.rpartition(":")
    print(f"\n  flask-ai-sse demo ready: open http://{host or '127.0.0.1'}:{port}/\n", flush=True)


# flask-ai-sse's shutdown hooks (docs/deployment.rst, "Shutdown"). Imported inside the
# hooks, in the worker: the master must not import requests before gevent patches ssl.
def post_worker_init(worker: object) -> None:
    from flask_ai_sse.gunicorn import post_worker_init

    post_worker_init(worker)


def worker_exit(server: object, worker: object) -> None:
    from flask_ai_sse.gunicorn import worker_exit

    worker_exit(server, worker)
