"""``flask ai-sse ask`` and ``check`` against the mock OpenAI upstream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from flask_ai_sse import AISSE
from flask_ai_sse.testing.upstream import MockReply, OpenAIMock
from tests.helpers import ROOT

KEY = "sk-test-cli-0123456789abcdef"
WRONG_KEY = "sk-wrong-cli-fedcba9876543210"


@pytest.fixture
def mock() -> Iterator[OpenAIMock]:
    with OpenAIMock(api_key=KEY) as server:
        yield server  # type: ignore[misc]


def make_runner(mock: OpenAIMock, **config: Any) -> FlaskCliRunner:
    app = Flask(__name__)
    settings = {
        "AI_SSE_PROVIDER": "openai",
        "AI_SSE_BASE_URL": mock.base_url,
        "AI_SSE_API_KEY": KEY,
        "AI_SSE_MAX_RETRIES": 0,
    }
    app.config.update({**settings, **config})
    AISSE(app)
    return app.test_cli_runner()


def test_group_exists_without_persistence(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["ai-sse", "--help"])
    assert result.exit_code == 0
    assert "ask" in result.output and "check" in result.output
    assert "reconcile" not in result.output  # only where persistence is on


def test_ask_streams_the_text_then_figures(mock: OpenAIMock) -> None:
    mock.script(MockReply(text="Hello from the mock, in pieces.", prompt_tokens=7))
    result = make_runner(mock).invoke(args=["ai-sse", "ask", "Say hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Hello from the mock, in pieces.\n"
    figures = result.stderr.strip().splitlines()[-1]
    assert "time to first token" in figures and "tokens/s" in figures
    assert "usage: 7 in, 6 out, 13 total" in figures
    sent = mock.last_request.json
    assert sent["stream"] is True
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}


def test_ask_options_reach_upstream(mock: OpenAIMock) -> None:
    args = ["ai-sse", "ask", "--system", "Be brief.", "--model", "gpt-test", "hi"]
    result = make_runner(mock).invoke(args=args)
    assert result.exit_code == 0, result.output
    sent = mock.last_request.json
    assert sent["model"] == "gpt-test"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_ask_json_prints_the_raw_events(mock: OpenAIMock) -> None:
    mock.script(MockReply(text="one two", prompt_tokens=3))
    result = make_runner(mock).invoke(args=["ai-sse", "ask", "--json", "hi"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "message", "message", "done", "message"]
    assert events[0]["data"]["provider"] == "openai"
    assert "".join(e["data"]["content"] for e in events[1:3]) == "one two"
    assert events[3]["data"]["usage"]["completion_tokens"] == 2
    assert events[-1]["data"] == "[DONE]"
    assert all(e["id"] for e in events[:-1])
    assert "tokens/s" in result.stderr


def test_ask_with_another_provider(mock: OpenAIMock) -> None:
    runner = make_runner(mock, AI_SSE_FAKE_RESPONSE="Canned.", AI_SSE_FAKE_DELAY=0)
    result = runner.invoke(args=["ai-sse", "ask", "--provider", "fake", "hi"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "Canned.\n"
    assert mock.requests == []


def test_ask_401_exits_non_zero_without_the_key(mock: OpenAIMock) -> None:
    result = make_runner(mock, AI_SSE_API_KEY=WRONG_KEY).invoke(args=["ai-sse", "ask", "hi"])
    assert result.exit_code == 1
    assert "401" in result.stderr and "openai" in result.stderr
    assert result.stdout == ""
    assert WRONG_KEY not in result.output and WRONG_KEY[3:12] not in result.output
    assert KEY not in result.output


def test_ask_without_a_key_says_where_to_put_it(
    mock: OpenAIMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runner = make_runner(mock, AI_SSE_PROVIDER="fake")
    result = runner.invoke(args=["ai-sse", "ask", "--provider", "openai", "hi"])
    assert result.exit_code == 1
    assert "AI_SSE_API_KEY or OPENAI_API_KEY" in result.output


def test_ask_error_mid_stream_exits_non_zero(mock: OpenAIMock) -> None:
    mock.script(MockReply(text="one two three", fault="reset", at=2))
    result = make_runner(mock).invoke(args=["ai-sse", "ask", "hi"])
    assert result.exit_code == 1
    assert result.stdout.startswith("one two")
    assert "Error:" in result.stderr


def test_check_says_ok_in_one_line(mock: OpenAIMock) -> None:
    result = make_runner(mock).invoke(args=["ai-sse", "check"])
    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("ok: openai gpt-4o-mini at " + mock.base_url)
    assert "key from AI_SSE_API_KEY" in line
    assert mock.last_request.json["max_completion_tokens"] == 1


def test_check_401_fails_in_one_line_without_the_key(mock: OpenAIMock) -> None:
    result = make_runner(mock, AI_SSE_API_KEY=WRONG_KEY).invoke(args=["ai-sse", "check"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert "401" in line and mock.base_url in line
    assert WRONG_KEY not in line and WRONG_KEY[3:12] not in line


def test_ctrl_c_cancels_the_stream_upstream(mock: OpenAIMock) -> None:
    """SIGINT to a real ``flask ai-sse ask``: the mock sees its stream closed by the client."""
    mock.script(MockReply(chunks=[f"tok{i} " for i in range(200)], delay=0.05))
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "APP_AI_SSE_PROVIDER": json.dumps("openai"),
        "APP_AI_SSE_BASE_URL": json.dumps(mock.base_url),
        "APP_AI_SSE_API_KEY": json.dumps(KEY),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "flask", "--app", "tests.apps.server_app:create_app()"]
    proc = subprocess.Popen(
        [*cmd, "ai-sse", "ask", "count"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(5) == b"tok0 "  # the stream runs and prints as it arrives
        assert mock.open_streams == 1
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130, err
    assert b"Cancelled" in err and b"Traceback" not in err
    assert mock.wait_for_open_streams(0, timeout=5)
    stats = mock.stats()
    assert stats["streams_client_closed"] == 1 and stats["streams_completed"] == 0


def test_figures_line_without_usage() -> None:
    from flask_ai_sse._cli import Figures

    now = time.monotonic()
    line = Figures(started=now - 1.0, first_token=now - 0.5, ended=now, pieces=10).line()
    assert line == "time to first token 0.500 s, 20.0 tokens/s; usage: not reported"
