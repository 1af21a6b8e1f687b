"""The public surface, drawn as httpx draws its own: ``__all__`` is exactly what the
package root exports, holds every error users may catch, and is documented."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import types
from pathlib import Path

import flask_ai_sse
from flask_ai_sse import errors

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def test_all_is_exactly_what_the_root_exports():
    exported = {
        name
        for name, value in vars(flask_ai_sse).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert exported | {"__version__"} == set(flask_ai_sse.__all__)


def test_the_version_is_the_installed_distributions():
    assert flask_ai_sse.__version__ == importlib.metadata.version("flask-ai-sse")


def test_every_error_users_may_catch_is_exported():
    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.AISSEError)
    }
    assert classes == set(errors.__all__)
    assert classes <= set(flask_ai_sse.__all__)


def test_every_exported_name_is_on_the_api_page():
    page = API_PAGE.read_text()
    documented = set(re.findall(r"flask_ai_sse\.(\w+)", page))
    assert set(flask_ai_sse.__all__) - {"__version__"} <= documented


def test_internal_modules_are_private_by_name():
    package = Path(flask_ai_sse.__path__[0])
    public_top = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    assert public_top == {
        "chunks",
        "constants",
        "errors",
        "extension",
        "metrics",
        "signals",
        "sse",
        "task",
    }
