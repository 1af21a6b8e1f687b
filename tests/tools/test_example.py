"""The tools example runs on the fake provider: both tools called, results shown, answered."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from flask_ai_sse.testing import collect

APP = Path(__file__).resolve().parents[2] / "examples" / "tools" / "app.py"


def test_the_tools_example_streams_calls_results_and_an_answer() -> None:
    spec = importlib.util.spec_from_file_location("tools_example", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tools_example"] = module  # Flask finds the templates from it
    spec.loader.exec_module(module)
    app = module.create_app()
    app.config.update(FORECAST_SECONDS=0.05)
    app.extensions["ai_sse"].provider.delay = 0
    client = app.test_client()
    assert b"current_temperature" in client.get("/").data
    result = collect(client.get("/ai/stream?prompt=Weather in Lisbon?").response)
    calls = [e.json()["name"] for e in result.events if e.event == "tool_call"]
    results = [e.json() for e in result.events if e.event == "tool_result"]
    assert calls == ["current_temperature", "slow_forecast"]
    assert results[0]["result"] == {"city": "lisbon", "celsius": 17.5}
    assert results[1]["result"][0] == "day 1: like today"
    assert result.text.startswith("Let me look that up. Here is what the tools found:")
    assert result.terminal.json()["steps"] == 2
