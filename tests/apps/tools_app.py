"""An app with tools for the server tests; configured through ``APP_*`` env vars.

``get_order`` answers at once, ``slow_lookup`` takes ``SLOW_SECONDS`` and then
touches ``TOOL_MARKER`` (so a test knows it finished), ``boom`` raises, and
``danger`` is registered but never listed in ``AI_SSE_TOOLS``; ``pick_color`` is a
client tool (no function). With
``SQLALCHEMY_DATABASE_URI`` set, conversations persist (``AISSE(app, db=db)``).
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, current_app, request

from flask_ai_sse import AISSE


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        AI_SSE_TOOLS=["get_order", "slow_lookup", "boom"],
        SLOW_SECONDS=2.0,
        TOOL_MARKER="",
    )
    app.config.from_prefixed_env(prefix="APP")
    db = None
    if app.config.get("SQLALCHEMY_DATABASE_URI"):
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy(app)
    ai = AISSE(app, db=db)
    if db is not None:
        with app.app_context():
            db.create_all()

    @ai.tool
    def get_order(order_id: str) -> dict[str, str]:
        """Look up an order.

        Args:
            order_id: The order's number.
        """
        return {"order_id": order_id, "status": "shipped"}

    @ai.tool
    def slow_lookup(query: str) -> str:
        """Search slowly."""
        time.sleep(float(current_app.config["SLOW_SECONDS"]))
        if current_app.config["TOOL_MARKER"]:
            Path(current_app.config["TOOL_MARKER"]).write_text(query)
        return "found"

    @ai.tool
    def boom() -> str:
        """Always fails."""
        raise RuntimeError("internal detail: db password hunter2")

    @ai.tool
    def danger() -> str:
        """Registered, never offered to route clients."""
        if current_app.config["TOOL_MARKER"]:
            Path(current_app.config["TOOL_MARKER"]).write_text("danger ran")
        return "ran"

    # A client tool the routes may offer (AI_SSE_TOOLS names it): useChat runs it.
    ai.tools.register(
        {
            "name": "pick_color",
            "description": "Ask the user to pick a color.",
            "parameters": {"type": "object", "properties": {"hint": {"type": "string"}}},
        }
    )

    @app.post("/client-tool")
    def client_tool():  # type: ignore[no-untyped-def]
        pick = {
            "name": "pick_color",
            "description": "Ask the user to pick a color.",
            "parameters": {"type": "object", "properties": {"hint": {"type": "string"}}},
        }
        return ai.ask_stream(request.json["prompt"], tools=[pick])

    return app
