"""The demo page in headless Chromium: streaming with the shipped client, resume after a
cut, re-attach after a reload, long prompts.

Real browser, real gunicorn gevent server. The resume test puts a TCP proxy in front of
the server that cuts the first stream connection mid-answer; the client reconnects with
Last-Event-ID and the answer must come out whole, once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from flask_ai_sse.providers.fake import DEFAULT_TEMPLATE

from ..helpers import free_port, need_service

pytestmark = pytest.mark.browser

PROMPT = "Tell me about streams"
EXPECTED = DEFAULT_TEMPLATE.format(prompt=PROMPT)


class CuttingProxy:
    """Forwards loopback TCP; the first response to ``trigger`` (a request's first bytes,
    ``GET /ai/stream?`` by default) is cut after N bytes."""

    def __init__(
        self, target_port: int, cut_after: int, trigger: bytes = b"GET /ai/stream?"
    ) -> None:
        self.target_port = target_port
        self.trigger = trigger
        self.cut_after = cut_after
        self.cuts = 0
        self.stream_requests = 0
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Pump both ways; a stream request seen on this connection arms the cut."""
        upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        client.settimeout(30)
        state = {"sent": 0, "limit": None}

        def requests_in() -> None:
            try:
                while data := client.recv(65536):
                    if data.startswith(self.trigger):
                        self.stream_requests += 1
                        if self.cuts == 0:
                            self.cuts += 1
                            state["limit"] = state["sent"] + self.cut_after
                    upstream.sendall(data)
            except OSError:
                pass
            self._close(client, upstream)

        threading.Thread(target=requests_in, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                limit = state["limit"]
                if limit is not None and state["sent"] + len(data) >= limit:
                    client.sendall(data[: limit - state["sent"]])
                    break
                client.sendall(data)
                state["sent"] += len(data)
        except OSError:
            pass
        self._close(client, upstream)

    @staticmethod
    def _close(*socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture(scope="module")
def demo(module_gunicorn, tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.db"
    return module_gunicorn(
        {"AI_SSE_FAKE_DELAY": 0.02, "AI_SSE_RETRY": 200},
        app="app:create_app()",
        extra_args=["--chdir", "examples/chat"],
        env={"DATABASE_URL": f"sqlite:///{db}"},
    )


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory) -> Iterator[object]:
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager go online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        need_service("chromedriver", "install Debian's 'chromium-driver' package")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def ask_in_page(browser, url: str, prompt: str = PROMPT) -> tuple[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    assert "fake provider" in browser.find_element(By.TAG_NAME, "body").text
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
    )
    browser.find_element(By.ID, "prompt").send_keys(prompt)
    browser.find_element(By.ID, "send").click()
    # The input clears and the question shows at once.
    assert browser.find_element(By.ID, "prompt").get_attribute("value") == ""
    assert browser.find_elements(By.CSS_SELECTOR, "#history li")[-1].text == prompt
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
    )
    return (
        browser.find_element(By.ID, "answer").text,
        browser.find_element(By.ID, "status").text,
    )


def test_demo_page_streams_an_answer_into_a_stored_conversation(demo, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    answer, status = ask_in_page(browser, f"{demo.url}/")
    assert answer == EXPECTED
    assert status == "finished: stop"
    browser.save_screenshot(str(tmp_path / "demo.png"))

    conversation_id = browser.execute_script("return location.hash.slice(1)")
    stored = requests.get(f"{demo.url}/ai/conversations/{conversation_id}", timeout=5).json()
    assert [(m["role"], m["content"], m["status"]) for m in stored["messages"]] == [
        ("user", PROMPT, "completed"),
        ("assistant", EXPECTED, "completed"),
    ]
    browser.refresh()  # the conversation comes back from SQLite
    WebDriverWait(browser, 10).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#history li")) == 2
    )
    turns = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#history li")]
    assert turns == [PROMPT, EXPECTED]


def test_a_cut_stream_resumes_with_nothing_lost_or_repeated(demo, browser):
    proxy = CuttingProxy(demo.port, cut_after=900, trigger=b"POST /ai/stream")
    try:
        answer, status = ask_in_page(browser, f"http://127.0.0.1:{proxy.port}/")
    finally:
        proxy.close()
    assert proxy.cuts == 1  # cut mid-answer, yet the answer is whole: the client resumed
    assert answer == EXPECTED
    assert status == "finished: stop"


def test_a_long_prompt_goes_in_the_body_not_the_url(demo, browser):
    prompt = "long" * 3000  # 12 KB: over any URL limit of the server
    answer, status = ask_in_page(browser, f"{demo.url}/", prompt)
    assert answer == DEFAULT_TEMPLATE.format(prompt=prompt)
    assert status == "finished: stop"


def test_a_reload_mid_answer_reattaches_and_finishes(demo, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{demo.url}/")
    WebDriverWait(browser, 10).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true"
    )
    browser.find_element(By.ID, "prompt").send_keys(PROMPT)
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 10).until(lambda d: len(d.find_element(By.ID, "answer").text) > 40)
    browser.refresh()
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
    )
    assert browser.find_element(By.ID, "answer").text == EXPECTED
    assert browser.find_element(By.ID, "status").text == "finished: stop"
    turns = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#history li")]
    assert turns == [PROMPT]  # the question from the stored conversation, the answer below it
