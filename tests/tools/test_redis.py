"""Steps on the Redis store with two gunicorn workers: a reader on either worker gets
every step of a stream whose producer runs on one of them."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from flask_ai_sse.sse import ServerSentEvent, SSEDecoder
from flask_ai_sse.testing import collect
from flask_ai_sse.testing.upstream import FORMATS, MockReply, MockToolCall

from ..helpers import require_redis

pytestmark = [pytest.mark.server, pytest.mark.redis]

KEY = "sk-test-tools-redis"


def test_resume_and_fan_out_across_steps_on_redis(gunicorn_server: Any) -> None:
    redis_url = require_redis()
    with FORMATS["openai"](api_key=KEY) as mock:
        server = gunicorn_server(
            {
                "AI_SSE_PROVIDER": "openai",
                "AI_SSE_BASE_URL": mock.base_url,
                "AI_SSE_API_KEY": KEY,
                "AI_SSE_STORE": redis_url,
                "AI_SSE_DISCONNECT_GRACE": 10,
            },
            app="tests.apps.tools_app:create_app()",
            workers=2,
        )
        mock.script(
            MockReply(
                text="Checking.",
                tool_calls=[MockToolCall("get_order", {"order_id": "A-1"}, id="call_r")],
                finish_reason="tool_calls",
            ),
            MockReply(text="one two three four five six", delay=0.05),
        )
        resp = requests.post(
            f"{server.url}/ai/stream", json={"prompt": "x"}, stream=True, timeout=(3, 15)
        )
        decoder = SSEDecoder()
        seen: list[ServerSentEvent] = []
        for chunk in resp.iter_content(chunk_size=None):
            seen += [e for e in decoder.feed(chunk) if isinstance(e, ServerSentEvent)]
            if any(e.event == "tool_result" for e in seen):
                break
        resp.close()
        last = seen[-1].id
        stream_id = last.rsplit(":", 1)[0]
        # several readers, new connections (either worker): one resumes, others replay all
        tails = [
            collect(
                requests.get(
                    f"{server.url}/ai/streams/{stream_id}",
                    headers={"Last-Event-ID": last},
                    stream=True,
                    timeout=(3, 15),
                ).iter_content(chunk_size=None)
            )
        ]
        whole = [
            collect(
                requests.get(
                    f"{server.url}/ai/streams/{stream_id}", stream=True, timeout=(3, 15)
                ).iter_content(chunk_size=None)
            )
            for _ in range(3)
        ]
        joined = [(e.id, e.event, e.data) for e in seen + tails[0].events]
        for other in whole:
            assert [(e.id, e.event, e.data) for e in other.events] == joined
        done = next(e.json() for e in whole[0].events if e.event == "done")
        assert (done["steps"], done["finish_reason"]) == (2, "stop")
        assert whole[0].text == "Checking.one two three four five six"
        assert len(mock.requests) == 2
