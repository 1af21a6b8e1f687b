"""The baseline: the relay a user writes by hand with Flask and ``requests``.

Deliberately the obvious code, not a tuned one: ``requests.post(..., stream=True)``,
``iter_lines()``, one ``data: {"content": ...}`` event per upstream token, from a
generator in a ``Response``. Served the same way as the example app::

    BASELINE_UPSTREAM=http://127.0.0.1:9100/v1 gunicorn -k gevent -w 1 \\
        --chdir benchmarks 'baseline_app:create_app()'
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import requests
from flask import Flask, Response, request


def create_app() -> Flask:
    app = Flask(__name__)
    upstream = os.environ["BASELINE_UPSTREAM"]
    api_key = os.environ.get("BASELINE_API_KEY", "bench-key")

    @app.post("/stream")
    def stream() -> Response:
        prompt = request.get_json()["prompt"]
        upstream_response = requests.post(
            f"{upstream}/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": prompt}],
                "stream": True,
            },
            headers={"Authorization": f"Bearer {api_key}"},
            stream=True,
            timeout=(10, 120),
        )
        upstream_response.raise_for_status()

        def generate() -> Iterator[str]:
            try:
                for line in upstream_response.iter_lines():
                    if not line.startswith(b"data: "):
                        continue
                    data = line[len(b"data: ") :]
                    if data == b"[DONE]":
                        break
                    choices = json.loads(data).get("choices") or [{}]
                    content = choices[0].get("delta", {}).get("content")
                    if content:
                        yield f"data: {json.dumps({'content': content})}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                upstream_response.close()

        return Response(generate(), mimetype="text/event-stream")

    return app
