"""A hostile page in a real browser: its forged requests are refused, the site's own pass.

Headless Chromium opens a page served from another site (``localhost`` on another
port, while the app is at ``127.0.0.1``) that loads ``<img src=".../ai/stream?prompt=">``
and then submits a ``text/plain`` form to ``POST /ai/streams/<id>/cancel``: what any
page can make a visitor's browser do. The server must refuse both (its access log and
the stream's end say so), while the same ``POST`` from a page of the app's own origin
cancels.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ..helpers import free_port, open_stream, wait_until
from ..http.sse_client import LiveStream
from .test_demo import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser

APP = "tests.apps.hardening_app:create_app()"


@pytest.fixture
def hostile_site() -> Iterator[tuple[int, dict[str, str]]]:
    """Serves ``pages[path]`` as HTML on ``localhost:<port>``: a site of its own."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port, pages
    httpd.shutdown()
    httpd.server_close()


def test_a_hostile_page_can_neither_cancel_nor_start_streams(
    gunicorn_server,
    browser,  # noqa: F811  (the fixture)
    hostile_site,
):
    from selenium.webdriver.common.by import By

    server = gunicorn_server(
        {
            "AI_SSE_ALLOW_GET_STREAM": "same-origin",
            "AI_SSE_FAKE_RESPONSE": "{prompt}",
            "AI_SSE_FAKE_DELAY": 0.01,
        },
        app=APP,
        extra_args=["--access-logfile", "-"],
    )
    victim = LiveStream(
        open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "word " * 300})
    )
    stream_id = victim.stream_id
    port, pages = hostile_site
    pages["/"] = f"""<!doctype html>
<img id="img" src="{server.url}/ai/stream?prompt=forged-by-img">
<form id="form" method="POST" enctype="text/plain"
      action="{server.url}/ai/streams/{stream_id}/cancel">
  <input name="a" value="b">
</form>
<script>
  const img = document.getElementById("img");
  img.onload = img.onerror = () => document.getElementById("form").submit();
</script>"""
    browser.get(f"http://localhost:{port}/")  # another site than 127.0.0.1
    # The form post navigated the tab to the server's answer: the JSON refusal.
    wait_until(lambda: "/cancel" in browser.current_url, what="the form post")
    body = wait_until(lambda: browser.find_element(By.TAG_NAME, "body").text, what="its answer")
    assert "cross_site_request" in body
    # The stream was not cancelled: it ran to its end.
    assert victim.rest().terminal.json()["finish_reason"] == "stop"
    log = server.output()
    assert '"GET /ai/stream?prompt=forged-by-img HTTP/1.1" 403' in log
    assert f'"POST /ai/streams/{stream_id}/cancel HTTP/1.1" 403' in log

    # The same plain POST from a page of the app's own origin cancels.
    own = LiveStream(
        open_stream(f"{server.url}/ai/stream", method="POST", json={"prompt": "word " * 300})
    )
    browser.get(f"{server.url}/pid")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('/ai/streams/{own.stream_id}/cancel', {{method: 'POST'}})"
        ".then((r) => done(r.status), (e) => done(String(e)));"
    )
    assert status == 202
    assert own.rest().terminal.json()["finish_reason"] == "cancelled"
    # And an EventSource of the app's own page may use GET /stream ("same-origin").
    events = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const source = new EventSource('/ai/stream?prompt=mine');"
        "const got = [];"
        "source.onmessage = (e) => {"
        "  if (e.data === '[DONE]') { source.close(); done(got.join('')); }"
        "  else got.push(JSON.parse(e.data).content); };"
        "source.onerror = () => { source.close(); done('error'); };"
    )
    assert events == "mine"
