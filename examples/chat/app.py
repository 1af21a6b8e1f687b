"""The demo chat app: flask-ai-sse on its embedded defaults.

Fake provider (no key, no network), SQLite for conversations, the in-memory
stream store. Serve it with gunicorn's gevent worker (see gunicorn.conf.py)::

    gunicorn -c examples/chat/gunicorn.conf.py

Any config key can be set from the environment with Flask's prefix, e.g.
``FLASK_AI_SSE_PROVIDER=openai OPENAI_API_KEY=... gunicorn -c examples/chat/gunicorn.conf.py``.
``DATABASE_URL`` picks the database (default: SQLite in this directory).
"""

from __future__ import annotations

import os

from flask import Flask, render_template
from flask_sqlalchemy import SQLAlchemy

from flask_ai_sse import AISSE

db = SQLAlchemy()
ai = AISSE(db=db)


def create_app(config: dict[str, object] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///ai-sse-demo.db"),
        AI_SSE_FAKE_DELAY=0.05,
    )
    app.config.from_prefixed_env()  # FLASK_AI_SSE_KEEPALIVE=5 sets AI_SSE_KEEPALIVE
    # Older spellings, still used by the test and benchmark harnesses.
    app.config.from_prefixed_env(prefix="APP")
    for key in ("AI_SSE_PROVIDER", "AI_SSE_MODEL", "AI_SSE_BASE_URL", "AI_SSE_STORE"):
        if key in os.environ:
            app.config[key] = os.environ[key]
    app.config.update(config or {})
    db.init_app(app)
    ai.init_app(app)
    with app.app_context():
        db.create_all()

    @app.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            provider=ai.provider.name,
            model=ai.provider.model,
            prefix=app.config["AI_SSE_URL_PREFIX"],
        )

    return app
