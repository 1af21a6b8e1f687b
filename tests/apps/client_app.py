"""A page that streams with the shipped browser client (``/ai/client.js``), for Chromium."""

from __future__ import annotations

from flask import Flask

from flask_ai_sse import AISSE

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>client.js</title>
<body data-state="idle">
<div id="answer"></div>
<div id="status"></div>
<script type="module">
  import { AIClient } from "/ai/client.js";

  const ai = new AIClient({ prefix: "/ai", retryDelay: 100 });
  const answer = document.getElementById("answer");
  const status = document.getElementById("status");
  const handlers = {
    onStart: () => (document.body.dataset.state = "streaming"),
    onToken: (text) => answer.append(text),
    onDone: (done) => (status.textContent = "finished: " + done.finish_reason),
    onError: ({ error }) => (status.textContent = "error: " + error.type),
    onEnd: () => (document.body.dataset.state = "done"),
  };
  window.ask = (prompt) => {
    answer.textContent = "";
    window.currentStream = ai.stream({ prompt }, handlers);
  };
  window.resumed = ai.resume(handlers) !== null;
  window.ready = true;
</script>
"""


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env(prefix="APP")
    AISSE(app)

    @app.get("/")
    def page() -> str:
        return PAGE

    return app
