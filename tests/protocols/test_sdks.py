"""The real clients read our streams: the `ai` npm package (useChat's parser) and the
official `openai` Python SDK against a real gunicorn gevent server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flask_ai_sse.protocols import create_encoder

from .script import CANCELLED, CLIENT, FAILED, RICH, STREAM_ID

JS = Path(__file__).parent.parent / "js"
ANSWER = "Streams in three formats, one generation."


def node() -> str:
    path = shutil.which("node")
    installed = (JS / "node_modules" / "ai" / "package.json").exists()
    if path is None or not installed:
        if os.environ.get("CI"):
            pytest.fail("Node and tests/js/node_modules are needed: cd tests/js && npm ci")
        pytest.skip("needs node and `npm ci` in tests/js")
    return path


def ai_sdk_reads(body: bytes) -> dict:
    """What the `ai` package makes of a UI message stream: chunks, errors, the UIMessage."""
    done = subprocess.run(
        [node(), str(JS / "parse_ui_stream.mjs")],
        input=body,
        capture_output=True,
        timeout=60,
        cwd=JS,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["invalid"] == [], result["invalid"]  # every chunk passes uiMessageChunkSchema
    return result


def vercel(entries, first: int = 1, skip: int = 0) -> bytes:
    encoder = create_encoder("vercel", STREAM_ID)
    encoder.skip(1, entries[:skip])
    return encoder.encode(first + skip, entries[skip:])


def test_ai_sdk_builds_the_message_with_reasoning_tools_and_steps():
    result = ai_sdk_reads(vercel(RICH))
    message = result["message"]
    assert message["id"] == STREAM_ID and message["role"] == "assistant"
    parts = [{k: v for k, v in p.items() if k != "providerMetadata"} for p in message["parts"]]
    assert parts == [
        {"type": "step-start"},
        {"type": "reasoning", "id": "reasoning-2", "text": "Thinking.", "state": "done"},
        {"type": "text", "text": "Let me look.\n", "state": "done"},
        {
            "type": "tool-weather",
            "toolCallId": "call_1",
            "state": "output-available",
            "input": {"city": "Oslo"},
            "output": {"temp": 3},
        },
        {
            "type": "tool-time",
            "toolCallId": "call_2",
            "state": "output-error",
            "input": {},
            "errorText": "No clock.",
        },
        {"type": "step-start"},
        {"type": "text", "text": "It is 3 °C.", "state": "done"},
    ]
    assert message["metadata"]["usage"]["total_tokens"] == 12
    assert result["errors"] == []


def test_ai_sdk_leaves_client_tool_calls_for_the_page():
    """A server call with its output, then client calls awaiting ``addToolResult``."""
    message = ai_sdk_reads(vercel(CLIENT))["message"]
    tools = [
        (p["type"], p["toolCallId"], p["state"]) for p in message["parts"] if "toolCallId" in p
    ]
    assert tools == [
        ("tool-get_order", "call_s", "output-available"),
        ("tool-pick", "call_c", "input-available"),
        ("tool-confirm", "call_d", "input-available"),
    ]


def test_ai_sdk_reads_a_stream_cut_and_resumed_with_last_event_id():
    """The bytes before the cut, then a resumed reader's bytes: the same message as whole."""
    whole = ai_sdk_reads(vercel(RICH))["message"]
    for cut in (2, 4, 5, 9, 11):
        before = create_encoder("vercel", STREAM_ID).encode(1, RICH[:cut])
        assert ai_sdk_reads(before + vercel(RICH, skip=cut))["message"] == whole


def test_ai_sdk_sees_errors_and_cancels():
    failed = ai_sdk_reads(vercel(FAILED))
    assert failed["errors"] == ["Error: The provider failed."]
    assert failed["message"]["parts"][-1]["text"] == "Hal"
    cancelled = ai_sdk_reads(vercel(CANCELLED))
    assert cancelled["chunks"][-2:] == ["abort", "finish"]
    assert cancelled["message"]["id"] == "7"


# -- against a real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(module_gunicorn):
    return module_gunicorn(
        {
            "AI_SSE_FAKE_RESPONSE": ANSWER,
            "AI_SSE_FAKE_DELAY": 0.002,
            "AI_SSE_KEEPALIVE": 0.05,  # keepalives between chunks, as the SDKs must tolerate
        }
    )


@pytest.mark.server
def test_ai_sdk_parses_a_live_chat_and_its_resume(server):
    import requests

    body = {
        "id": "live-chat",
        "messages": [{"id": "1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
        "trigger": "submit-message",
    }
    resp = requests.post(f"{server.url}/ai/chat", json=body, timeout=10)
    assert resp.headers["x-vercel-ai-ui-message-stream"] == "v1"
    first = ai_sdk_reads(resp.content)
    assert first["message"]["parts"][-1]["text"] == ANSWER
    again = requests.get(f"{server.url}/ai/chat/live-chat/stream", timeout=10)
    assert ai_sdk_reads(again.content)["message"] == first["message"]


@pytest.fixture(scope="module")
def openai_client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server.url}/ai/v1", api_key="unused", max_retries=0)


@pytest.mark.server
def test_openai_sdk_streams_with_usage(openai_client):
    stream = openai_client.chat.completions.create(
        model="fake-1",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


@pytest.mark.server
def test_openai_sdk_without_streaming(openai_client):
    completion = openai_client.chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}], max_tokens=100
    )
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


@pytest.mark.server
def test_openai_sdk_raises_its_own_errors(openai_client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        openai_client.chat.completions.create(
            model="not-allowed", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 400
    assert info.value.code == "model_not_allowed"
    with pytest.raises(openai.BadRequestError):
        openai_client.chat.completions.create(model="fake-1", messages=[], stream=True)


@pytest.mark.server
def test_openai_sdk_sees_a_mid_stream_failure_as_an_api_error(module_gunicorn):
    openai = pytest.importorskip("openai")
    failing = module_gunicorn(
        {
            "AI_SSE_FAKE_RESPONSE": "word " * 50,
            "AI_SSE_FAKE_DELAY": 0.06,
            "AI_SSE_KEEPALIVE": 0.02,  # keepalive comments between chunks
            "AI_SSE_STREAM_TIMEOUT": 0.5,
        }
    )
    client = openai.OpenAI(base_url=f"{failing.url}/ai/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="fake-1", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError, match=r"(?i)time"):
        for chunk in stream:
            got.append(chunk)
    assert len(got) > 2 and got[0].choices[0].delta.role == "assistant"


@pytest.mark.server
def test_openai_sdk_sees_our_rate_limit_as_its_rate_limit_error(module_gunicorn):
    openai = pytest.importorskip("openai")
    limited = module_gunicorn({"AI_SSE_FAKE_RESPONSE": ANSWER, "AI_SSE_RATE_LIMIT": "1/minute"})
    client = openai.OpenAI(base_url=f"{limited.url}/ai/v1", api_key="unused", max_retries=0)
    ask = {"model": "fake-1", "messages": [{"role": "user", "content": "hi"}]}
    assert client.chat.completions.create(**ask).choices[0].message.content == ANSWER
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(**ask, stream=True)
    assert info.value.code == "rate_limited"
    assert int(info.value.response.headers["Retry-After"]) > 0
