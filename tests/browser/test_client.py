"""The shipped browser client in headless Chromium: a connection cut mid-answer resumes
with Last-Event-ID, and a reload mid-answer re-attaches from sessionStorage."""

from __future__ import annotations

import pytest

from flask_ai_sse.providers.fake import DEFAULT_TEMPLATE

from .test_demo import CuttingProxy, browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser

PROMPT = "Tell me about clients"
EXPECTED = DEFAULT_TEMPLATE.format(prompt=PROMPT)


@pytest.fixture(scope="module")
def site(module_gunicorn):
    return module_gunicorn(
        {"AI_SSE_FAKE_DELAY": 0.02, "AI_SSE_DISCONNECT_GRACE": 10},
        app="tests.apps.client_app:create_app()",
    )


def wait(browser, condition, timeout: float = 30):  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda d: d.execute_script(condition))


def text(browser, element_id: str) -> str:  # noqa: F811
    return browser.execute_script(f"return document.getElementById('{element_id}').textContent")


def test_a_cut_connection_resumes_with_nothing_lost_or_repeated(site, browser):  # noqa: F811
    proxy = CuttingProxy(site.port, cut_after=1500, trigger=b"POST /ai/stream")
    try:
        browser.get(f"http://127.0.0.1:{proxy.port}/")
        wait(browser, "return window.ready === true")
        browser.execute_script("window.ask(arguments[0])", PROMPT)
        wait(browser, "return document.body.dataset.state === 'done'")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert text(browser, "answer") == EXPECTED
    assert text(browser, "status") == "finished: stop"


def test_a_reload_mid_answer_reattaches_and_finishes(site, browser):  # noqa: F811
    browser.get(f"{site.url}/")
    wait(browser, "return window.ready === true")
    browser.execute_script("window.ask(arguments[0])", PROMPT)
    wait(browser, "return document.getElementById('answer').textContent.length > 40")
    browser.refresh()
    wait(browser, "return window.ready === true")
    assert browser.execute_script("return window.resumed") is True
    wait(browser, "return document.body.dataset.state === 'done'")
    assert text(browser, "answer") == EXPECTED
    assert text(browser, "status") == "finished: stop"
    assert browser.execute_script("return sessionStorage.length") == 0
