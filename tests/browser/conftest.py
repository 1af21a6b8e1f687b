"""The browser tests' fixture: one headless Chromium per module (Selenium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from ..helpers import need_service


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
