"""A gunicorn config (``-c python:tests.apps.gunicorn_hooks``) with the library's shutdown
hooks, written as docs/deployment.rst shows them."""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    from flask_ai_sse.gunicorn import post_worker_init

    post_worker_init(worker)


def worker_exit(server: Any, worker: Any) -> None:
    from flask_ai_sse.gunicorn import worker_exit

    worker_exit(server, worker)
