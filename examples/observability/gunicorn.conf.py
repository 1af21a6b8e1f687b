"""gunicorn settings for Prometheus metrics with several workers.

Start with an empty multiprocess directory, e.g.::

    rm -rf /tmp/ai-sse-metrics && mkdir /tmp/ai-sse-metrics
    PROMETHEUS_MULTIPROC_DIR=/tmp/ai-sse-metrics \
        gunicorn -c examples/observability/gunicorn.conf.py 'app:create_app()'
"""

from __future__ import annotations

from typing import Any

from flask_ai_sse.metrics import mark_process_dead

worker_class = "gevent"
workers = 2


def child_exit(server: Any, worker: Any) -> None:
    """A worker left: its live gauges (active streams and readers) must go with it."""
    mark_process_dead(worker.pid)
