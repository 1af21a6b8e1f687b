"""Reading each protocol's stream back into (text, reasoning, terminal) for the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask_ai_sse.sse import ServerSentEvent, iter_events


@dataclass
class Read:
    text: str = ""
    reasoning: str = ""
    ids: list[str] = field(default_factory=list)
    done: bool = False
    finish: Any = None
    error: Any = None


def read(protocol: str, body: bytes) -> Read:
    out = Read()
    for event in iter_events([body]):
        assert isinstance(event, ServerSentEvent)
        if event.data == "[DONE]":
            out.done = True
            continue
        out.ids.append(event.id or "")
        data = json.loads(event.data)
        if protocol == "default":
            if event.event == "message":
                out.text += data["content"]
            elif event.event == "reasoning":
                out.reasoning += data["content"]
            elif event.event == "done":
                out.finish = data["finish_reason"]
            elif event.event == "error":
                out.error = data["error"]["type"]
        elif protocol == "vercel":
            kind = data["type"]
            if kind == "text-delta":
                out.text += data["delta"]
            elif kind == "reasoning-delta":
                out.reasoning += data["delta"]
            elif kind == "finish":
                out.finish = data["messageMetadata"]["finish_reason"]
            elif kind == "error":
                out.error = data["errorText"]
        else:
            if "error" in data:
                out.error = data["error"]["type"]
                continue
            for choice in data["choices"]:
                delta = choice["delta"]
                out.text += delta.get("content") or ""
                out.reasoning += delta.get("reasoning_content") or ""
                if choice["finish_reason"]:
                    out.finish = choice["finish_reason"]
    return out
