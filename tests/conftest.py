"""Shared fixtures: apps, real gunicorn gevent servers, and the real Redis/PostgreSQL.

Under ``CI=true`` a test that needs Redis, PostgreSQL or Chromium fails when
the service is missing; elsewhere it is skipped with the reason. The helpers
these fixtures use are in ``tests/helpers.py``, importable by test modules.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from .helpers import ServerPool, need_service, require_postgres, require_redis
from .helpers import make_app as build_app


@pytest.fixture
def gunicorn_server(tmp_path: Path) -> Iterator[ServerPool]:
    """``gunicorn_server({"AI_SSE_KEEPALIVE": 0.2})`` starts a server for one test."""
    pool = ServerPool(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def module_gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The same, shared by a module's tests (start servers in a module-scoped fixture)."""
    pool = ServerPool(tmp_path_factory.mktemp("gunicorn"))
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def make_app() -> Callable[..., Flask]:
    """The app factory: ``make_app(**config)`` or ``make_app(AISSE(provider=...), **config)``."""
    return build_app


@pytest.fixture
def app() -> Flask:
    return build_app(AI_SSE_KEEPALIVE=5)


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def postgres_url() -> str:
    return require_postgres()


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        need_service("Chromium", "install Debian's 'chromium' package")
    return str(path)
