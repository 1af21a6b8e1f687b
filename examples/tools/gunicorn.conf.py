"""gunicorn settings for the tools demo: ``gunicorn -c examples/tools/gunicorn.conf.py``."""

from __future__ import annotations

import os
from pathlib import Path

chdir = str(Path(__file__).resolve().parent)
wsgi_app = "app:create_app()"
bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gevent"
workers = 1
timeout = 30
accesslog = "-"
