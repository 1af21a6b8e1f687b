"""The app of the persistence server tests: ``AISSE(app, db=db)`` under gunicorn.

Configured like ``server_app.py``: ``APP_<key>`` env vars (JSON values), e.g.
``APP_SQLALCHEMY_DATABASE_URI`` and ``APP_AI_SSE_TABLE_PREFIX``. The owner is
the ``X-Owner`` header. The provider answers by the prompt's first word:

* ``fail:N ...``: fails after N chunks;
* ``slow ...``: a long answer at 50 ms a chunk (to cancel, disconnect, kill);
* ``steady ...``: ``STEADY_TEXT``, about 1.5 s at 25 ms a chunk (to outlive a SIGTERM);
* anything else: ``Answer to <prompt>.`` (checkable for every stream).

``GET /_test/request?prompt=...`` shows the messages the provider was sent for
that prompt; ``GET /_test/pid`` the worker's pid. With ``TEST_REAL_PROVIDER``
the configured provider is used instead (``AI_SSE_PROVIDER``, e.g. a mock upstream).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from flask_ai_sse import AISSE
from flask_ai_sse.chunks import ChatRequest, Message
from flask_ai_sse.providers.base import ChunkStream
from flask_ai_sse.providers.fake import FakeProvider, FakeReply

SLOW_TEXT = " ".join(f"word{i}" for i in range(400))
STEADY_TEXT = " ".join(f"step{i}" for i in range(60))


def reply_for(prompt: str) -> FakeReply:
    word = prompt.split(" ", 1)[0]
    if word.startswith("fail:"):
        return FakeReply(text=SLOW_TEXT, fail_after=int(word[5:]), delay=0.01)
    if word == "slow":
        return FakeReply(text=SLOW_TEXT, delay=0.05)
    if word == "steady":
        return FakeReply(text=STEADY_TEXT, delay=0.025)
    return FakeReply(text=f"Answer to {prompt}.")


class PromptScripted(FakeProvider):
    """A fake provider whose behaviour each prompt chooses, and that remembers requests."""

    def __init__(self) -> None:
        super().__init__(delay=0.005)
        self.sent: dict[str, list[Message]] = {}

    def open(self, request: ChatRequest) -> ChunkStream:
        prompt = request.messages[-1]["content"]
        self.sent[prompt] = list(request.messages)
        return FakeProvider(script=[reply_for(prompt)], delay=self.delay).open(request)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config.from_prefixed_env(prefix="APP")
    app.config.update(config or {})
    db = SQLAlchemy(app)
    provider = PromptScripted()
    ai = AISSE(app, db=db, provider=None if app.config.get("TEST_REAL_PROVIDER") else provider)
    app.extensions["test_db"] = db

    @ai.authorize
    def owner() -> str | None:
        return request.headers.get("X-Owner")

    @app.get("/_test/request")
    def sent_request() -> Any:
        messages = provider.sent.get(request.args.get("prompt", ""))
        if messages is None:
            abort(404)
        return jsonify(messages)

    @app.get("/_test/pid")
    def pid() -> Any:
        return jsonify(os.getpid())

    return app
