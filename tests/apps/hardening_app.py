"""The app of the HTTP hardening tests (tests/http/), under gunicorn or the test client.

Config comes from ``APP_*`` env vars (JSON), as in ``server_app.py``, plus:

* ``TEST_LIMITER_STORAGE``: a Flask-Limiter storage URI; the app then has its own
  ``Limiter`` (key: the ``X-Client`` header) passed as ``AISSE(limiter=...)``.
* ``TEST_LOGIN_REQUIRED``: register the blueprint itself, behind a ``login_required``
  decorator that wants an ``X-Login`` header (``AI_SSE_REGISTER_BLUEPRINT=False``).

The owner is the ``X-User`` header; ``X-User: !401`` / ``!403`` make the hook abort.
``/custom/<case>`` serves custom streams that go wrong mid-stream. Every answer names
the worker that served it in ``X-Worker-Pid``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, abort, request

from flask_ai_sse import AISSE, ServerSentEvent


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not request.headers.get("X-Login"):
            abort(401)
        return view(*args, **kwargs)

    return wrapper


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["AI_SSE_FAKE_DELAY"] = 0.005
    app.config.from_prefixed_env(prefix="APP")
    app.config.update(config or {})
    limiter = None
    if app.config.get("TEST_LIMITER_STORAGE"):
        from flask_limiter import Limiter

        limiter = Limiter(
            lambda: request.headers.get("X-Client", "anonymous"),
            app=app,
            storage_uri=app.config["TEST_LIMITER_STORAGE"],
        )
    behind_login = bool(app.config.get("TEST_LOGIN_REQUIRED"))
    if behind_login:
        app.config["AI_SSE_REGISTER_BLUEPRINT"] = False
    ai = AISSE(app, limiter=limiter)
    if behind_login:
        app.register_blueprint(ai.create_blueprint(decorators=[login_required]), url_prefix="/ai")

    @ai.authorize
    def owner() -> str | None:
        user = request.headers.get("X-User")
        if user in ("!401", "!403"):
            abort(int(user[1:]))
        return user

    @app.get("/custom/<case>")
    def custom(case: str) -> Response:
        def events() -> Iterator[Any]:
            yield ServerSentEvent({"n": 1}, event="tick", id="1")
            if case == "bad-event":
                yield ServerSentEvent({"n": 2}, event="tick\ndata: injected")
            elif case == "bad-id":
                yield ServerSentEvent({"n": 2}, id="2\r\nevent: injected")
            elif case == "bad-type":
                yield object()
            yield ServerSentEvent({"n": 3}, event="tick", id="3")

        return ai.event_stream(events())

    @app.after_request
    def worker_pid(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())  # which worker answered
        return response

    @app.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app
