"""``GET /stream`` narrows tools (``tools=a,b``) and every JSON route takes ``max_steps``,
bounded by ``AI_SSE_MAX_STEPS``: a real gunicorn server and the OpenAI mock upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import MockReply, MockToolCall, OpenAIMock

pytestmark = pytest.mark.server
KEY = "sk-test-route-options-01"
ORDER = MockToolCall("get_order", {"order_id": "A-1"}, id="call_a")


@pytest.fixture(scope="module")
def stack(module_gunicorn: Any) -> Iterator[tuple[OpenAIMock, str]]:
    with OpenAIMock(api_key=KEY) as mock:
        server = module_gunicorn(
            {
                "AI_SSE_PROVIDER": "openai",
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_MAX_RETRIES": 0,
                "AI_SSE_READ_TIMEOUT": 5,
                "AI_SSE_MAX_STEPS": 3,
            },
            app="tests.apps.tools_app:create_app()",
        )
        yield mock, server.url
        server.stop()


@pytest.fixture(autouse=True)
def fresh(stack: tuple[OpenAIMock, str]) -> None:
    stack[0].requests.clear()


def offered(mock: OpenAIMock) -> list[str] | None:
    body = mock.requests[0].json
    return [t["function"]["name"] for t in body["tools"]] if "tools" in body else None


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(f"{url}/ai/stream", params=params, timeout=(3, 15))


def test_get_stream_narrows_tools(stack: tuple[OpenAIMock, str]) -> None:
    mock, url = stack
    mock.script(MockReply(text="a"), MockReply(text="b"), MockReply(text="c"))
    assert get(url, prompt="x", tools="get_order,boom").status_code == 200
    assert offered(mock) == ["get_order", "boom"]
    mock.requests.clear()
    assert get(url, prompt="x", tools="").status_code == 200
    assert offered(mock) is None  # an empty list offers none
    mock.requests.clear()
    assert get(url, prompt="x").status_code == 200
    assert offered(mock) == ["get_order", "slow_lookup", "boom"]  # AI_SSE_TOOLS


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"tools": "danger"}, "tool_not_allowed"),  # registered, not in AI_SSE_TOOLS
        ({"tools": "get_order,no way"}, "invalid_tools"),
        ({"tools": ["get_order", "boom"]}, "duplicate_parameter"),
        ({"max_steps": "4"}, "out_of_range"),  # over AI_SSE_MAX_STEPS
        ({"max_steps": "0"}, "out_of_range"),
        ({"max_steps": "two"}, "invalid_type"),
    ],
)
def test_get_stream_refuses(stack: tuple[OpenAIMock, str], params: dict, kind: str) -> None:
    resp = get(stack[1], prompt="x", **params)
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == kind
    assert stack[0].requests == []


def test_max_steps_on_every_route(stack: tuple[OpenAIMock, str]) -> None:
    """One step allowed: the model's call is not run, the answer ends with ``max_steps``."""
    mock, url = stack
    calling = MockReply(text="", tool_calls=[ORDER], finish_reason="tool_calls")
    mock.script(calling, calling, calling, calling)
    streamed = collect(get(url, prompt="x", max_steps="1").iter_content(chunk_size=None))
    done = next(e.json() for e in streamed.events if e.event == "done")
    assert (done["finish_reason"], done["steps"]) == ("max_steps", 1)
    body = {"prompt": "x", "max_steps": 1}
    posted = requests.post(f"{url}/ai/stream", json=body, timeout=(3, 15))
    assert '"finish_reason":"max_steps"' in posted.text.replace(" ", "")
    asked = requests.post(f"{url}/ai/ask", json=body, timeout=(3, 15)).json()
    assert (asked["finish_reason"], asked["steps"]) == ("max_steps", 1)
    chat = {
        "id": "steps-chat",
        "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]}],
        "max_steps": 1,
        "tools": ["get_order"],
    }
    resp = requests.post(f"{url}/ai/chat", json=chat, timeout=(3, 15))
    assert '"finishReason":"other"' in resp.text and '"finish_reason":"max_steps"' in resp.text
    assert len(mock.requests) == 4  # one upstream request per route: no tool ran
    for route, payload in [("stream", body), ("ask", body), ("chat", chat)]:
        resp = requests.post(f"{url}/ai/{route}", json={**payload, "max_steps": 9}, timeout=5)
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "out_of_range"
    resp = requests.post(f"{url}/ai/chat", json={**chat, "tools": ["danger"]}, timeout=5)
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "tool_not_allowed"
