"""The layers stay apart (the wire format, providers and engine import no Flask), and the
public modules export what they list."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import flask_ai_sse

PACKAGE_DIR = flask_ai_sse.__path__[0]

PURE = [
    "flask_ai_sse.sse",
    "flask_ai_sse.chunks",
    "flask_ai_sse._validation",
    "flask_ai_sse._parts",
    "flask_ai_sse._tools",
    "flask_ai_sse._steps",
    "flask_ai_sse._openai_body",
    "flask_ai_sse._ui_messages",
    "flask_ai_sse._cors",
    "flask_ai_sse._csrf",
    "flask_ai_sse._slots",
    "flask_ai_sse._sendwatch",
    "flask_ai_sse._usage",
    "flask_ai_sse._budgets",
    "flask_ai_sse.metrics",
    "flask_ai_sse._tracing",
    "flask_ai_sse.signals",
    "flask_ai_sse.providers",
    "flask_ai_sse.providers.openai",
    "flask_ai_sse.providers.anthropic",
    "flask_ai_sse.providers.gemini",
    "flask_ai_sse.providers.http",
    "flask_ai_sse.engine",
    "flask_ai_sse.engine.custom",
    "flask_ai_sse.engine.opening",
    "flask_ai_sse.engine.shutdown",
    "flask_ai_sse.protocols",
    "flask_ai_sse.protocols.openai",
    "flask_ai_sse.protocols.vercel",
]


@pytest.mark.parametrize("module", PURE)
def test_module_imports_without_flask(module):
    """Imported in a fresh interpreter where importing flask or werkzeug fails."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('flask', 'werkzeug'):\n"
        "            raise ImportError('layer violation: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib, types\n"
        # the package __init__ imports the Flask glue; load the submodule on its own
        "pkg = types.ModuleType('flask_ai_sse')\n"
        f"pkg.__path__ = [{PACKAGE_DIR!r}]\n"
        "pkg.__version__ = '0'\n"
        "sys.modules['flask_ai_sse'] = pkg\n"
        f"importlib.import_module({module!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]


PUBLIC = [
    "flask_ai_sse.providers",
    "flask_ai_sse.providers.http",
    "flask_ai_sse.testing",
    "flask_ai_sse.testing.upstream",
]


@pytest.mark.parametrize("module", PUBLIC)
def test_public_modules_export_what_they_list(module):
    exported = importlib.import_module(module)
    for name in exported.__all__:
        assert not name.startswith("_"), name
        assert hasattr(exported, name), name


def test_the_mock_upstream_package_exposes_only_its_list():
    """Everything else lives in modules private by name (``_server``, ``_base``, ...)."""
    upstream = importlib.import_module("flask_ai_sse.testing.upstream")
    public = {
        name
        for name, value in vars(upstream).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(upstream.__all__)
