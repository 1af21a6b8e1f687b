"""gunicorn settings for streaming: the gevent worker holds thousands of open streams.

Run from the repository root: ``gunicorn -c examples/chat/gunicorn.conf.py``.
``BIND``, ``WEB_CONCURRENCY`` and ``GRACEFUL_TIMEOUT`` come from the environment.

Stopping: the two hooks at the end are flask-ai-sse's (docs/deployment.rst,
"Stopping and reloading"). SIGTERM, and a reload (HUP), let running generations
finish, read or not, and end those still running shortly before ``graceful_timeout``
with ``event: error`` ``shutting_down`` + ``[DONE]`` instead of letting gunicorn cut
them; Ctrl-C (SIGINT) or SIGQUIT ends them that way at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

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
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "120"))
keepalive = 5
accesslog = "-"
# The default format logs the request line, query string included: a prompt sent as
# ``GET /ai/stream?prompt=...`` would be kept in every access log (and in the logs of any
# proxy in front). Log the method and path only: no query string, for any route.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# gunicorn >= 25.1 opens a control socket for ``gunicornc`` at one path per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second gunicorn of the
# same user takes it over, and ``gunicornc`` then talks to the wrong server. One path
# per bind address keeps this server's socket its own.
_runtime = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".gunicorn")
_name = re.sub(r"[^\w.-]", "_", bind)
control_socket = str(Path(_runtime) / f"ai-sse-demo-{_name}.ctl")


def when_ready(server: Any) -> None:
    host, _, port = bind.rpartition(":")
    print(f"\n  flask-ai-sse demo ready: open http://{host or '127.0.0.1'}:{port}/\n", flush=True)


# flask-ai-sse's shutdown hooks. Imported inside the hooks, in the worker: the master
# must not import requests before the gevent worker patches ssl.
def post_worker_init(worker: Any) -> None:
    from flask_ai_sse.gunicorn import post_worker_init

    post_worker_init(worker)


def worker_exit(server: Any, worker: Any) -> None:
    from flask_ai_sse.gunicorn import worker_exit

    worker_exit(server, worker)
