"""Tools demo: a model that calls two functions of this app, one of them slow.

Runs without a key on a scripted fake provider that calls both tools, then
answers from their results. Point it at a real model by environment::

    AI_SSE_PROVIDER=openai OPENAI_API_KEY=... gunicorn -c examples/tools/gunicorn.conf.py

Run it (gunicorn's gevent worker)::

    gunicorn -c examples/tools/gunicorn.conf.py

The page streams ``GET /ai/stream?prompt=...`` with ``EventSource`` and shows
``tool_call`` and ``tool_result`` events as they come.
"""

from __future__ import annotations

import json
import os
import time
from typing import Literal

from flask import Flask, render_template

from flask_ai_sse import AISSE, ToolError
from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.providers.base import ChunkStream
from flask_ai_sse.testing import FakeProvider, FakeReply, FakeToolCall

CITIES = {"oslo": -3.0, "lisbon": 17.5, "cairo": 24.0}


class ScriptedDemo(FakeProvider):
    """Calls both tools for a question, then answers from what they returned."""

    def open(self, request: ChatRequest) -> ChunkStream:
        last = request.messages[-1]
        if last["role"] == "tool":
            results = [m["content"] for m in request.messages if m["role"] == "tool"]
            text = "Here is what the tools found: " + "; ".join(map(str, results)) + "."
            return FakeProvider(script=[FakeReply(text=text)], delay=self.delay).open(request)
        city = str(last["content"]).strip().split()[-1].strip("?.!").lower() or "oslo"
        calls = [
            FakeToolCall("current_temperature", {"city": city}),
            FakeToolCall("slow_forecast", {"city": city, "days": 3}),
        ]
        reply = FakeReply(text="Let me look that up. ", tool_calls=calls)
        return FakeProvider(script=[reply], delay=self.delay).open(request)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(AI_SSE_TOOLS=["current_temperature", "slow_forecast"], AI_SSE_FAKE_DELAY=0.03)
    app.config.from_prefixed_env(prefix="APP")  # e.g. APP_AI_SSE_TOOL_TIMEOUT=5
    for key in ("AI_SSE_PROVIDER", "AI_SSE_MODEL", "AI_SSE_BASE_URL"):
        if key in os.environ:
            app.config[key] = os.environ[key]
    fake = app.config.get("AI_SSE_PROVIDER", "fake") == "fake"
    ai = AISSE(app, provider=ScriptedDemo(delay=app.config["AI_SSE_FAKE_DELAY"]) if fake else None)

    @ai.tool
    def current_temperature(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
        """The temperature in a city right now.

        Args:
            city: The city's name, e.g. "Oslo".
            unit: The unit of the answer.
        """
        if city.lower() not in CITIES:
            raise ToolError(f"No weather station in {city}.")
        value = CITIES[city.lower()]
        return {"city": city, unit: value if unit == "celsius" else value * 9 / 5 + 32}

    @ai.tool
    def slow_forecast(city: str, days: int = 3) -> list[str]:
        """A forecast that takes a few seconds to compute (watch the page wait for it).

        Args:
            city: The city's name.
            days: How many days ahead, 1 to 5.
        """
        time.sleep(float(app.config.get("FORECAST_SECONDS", 2.0)))
        return [f"day {d}: like today" for d in range(1, min(days, 5) + 1)]

    @app.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            prefix=app.config["AI_SSE_URL_PREFIX"],
            tools=json.dumps(app.config["AI_SSE_TOOLS"]),
        )

    return app
