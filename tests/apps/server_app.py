"""The app the server tests run under gunicorn; configured through ``APP_*`` env vars.

``APP_AI_SSE_KEEPALIVE=0.2`` sets ``AI_SSE_KEEPALIVE`` (values parsed as JSON).
"""

from __future__ import annotations

from flask import Flask

from flask_ai_sse import AISSE


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["AI_SSE_FAKE_DELAY"] = 0.005
    app.config.from_prefixed_env(prefix="APP")
    AISSE(app)
    return app
