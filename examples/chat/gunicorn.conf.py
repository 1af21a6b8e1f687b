"""gunicorn settings for streaming: the gevent worker holds thousands of open streams.

Run from the repository root: ``gunicorn -c examples/chat/gunicorn.conf.py``.
``BIND``, ``WEB_CONCURRENCY`` and ``GRACEFUL_TIMEOUT`` come from the environment.

Stopping: Ctrl-C (SIGINT) or SIGQUIT ends every running stream at once with its
terminal event (``done`` with ``finish_reason: "cancelled"``, then ``[DONE]``)
instead of cutting the connection. SIGTERM, and a reload (HUP), let running
streams finish, and end those still running shortly before ``graceful_timeout``
the same way, rather than let gunicorn cut them.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
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
# On reload/shutdown, running streams get this long to finish (see SIGTERM below).
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "120"))
keepalive = 5
accesslog = "-"

# gunicorn >= 25.1 opens a control socket for ``gunicornc`` at one path per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl): a second gunicorn of the
# same user takes it over, and ``gunicornc`` then talks to the wrong server. One path
# per bind address keeps this server's socket its own.
_runtime = os.environ.get("XDG_RUNTIME_DIR") or str(Path.home() / ".gunicorn")
_name = re.sub(r"[^\w.-]", "_", bind)
control_socket = str(Path(_runtime) / f"ai-sse-demo-{_name}.ctl")

#: Seconds before ``graceful_timeout`` at which SIGTERM ends the streams still running.
END_MARGIN = 5.0
#: The longest a worker waits for its readers to deliver the terminal events.
DELIVERY_WAIT = 2.0
_ending = threading.Lock()  # a green lock under the gevent worker


def when_ready(server: Any) -> None:
    host, _, port = bind.rpartition(":")
    print(f"\n  flask-ai-sse demo ready: open http://{host or '127.0.0.1'}:{port}/\n", flush=True)


def worker_int(worker: Any) -> None:
    """SIGINT/SIGQUIT in a worker (Ctrl-C): end its streams cleanly, then let it exit."""
    end_streams(worker)


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, keep gunicorn's graceful stop, plus a deadline for running streams."""
    import gevent

    def on_term(sig: int, frame: Any) -> None:
        worker.handle_exit(sig, frame)  # stop accepting; gunicorn waits for open requests
        delay = max(0.0, graceful_timeout - END_MARGIN)
        gevent.spawn_later(delay, end_streams, worker)

    signal.signal(signal.SIGTERM, on_term)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it: don't break system calls


def end_streams(worker: Any) -> None:
    """Cancel this worker's running generations; wait until their readers are done.

    A cancelled generation writes ``done`` (``finish_reason: "cancelled"``) and
    ``[DONE]``; its readers send them and end their responses, so clients see a
    finished stream rather than a dropped connection (and don't reconnect).
    """
    state = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("ai_sse")
    if state is None:
        return
    with _ending:  # Ctrl-C signals a worker twice (from the terminal and from the master)
        engine = state.engine
        running = [g for g in list(engine.active.values()) if not g.done.is_set()]
        if not running:
            return
        worker.log.info("ending %d running stream(s)", len(running))
        for generation in running:
            generation.abort("cancelled")
        deadline = time.monotonic() + DELIVERY_WAIT
        for generation in running:
            generation.done.wait(max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(_reading(engine, g) for g in running):
            time.sleep(0.05)  # a green sleep: the readers are writing their last events


def _reading(engine: Any, generation: Any) -> bool:
    try:
        return bool(engine.store.listeners(generation.stream_id))
    except Exception:  # the store is down: nothing more to wait for
        return False
