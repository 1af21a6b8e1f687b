"""The layers stay apart: the wire format, providers and engine import no Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest

import flask_ai_sse

PACKAGE_DIR = flask_ai_sse.__path__[0]

PURE = [
    "flask_ai_sse.sse",
    "flask_ai_sse.chunks",
    "flask_ai_sse.validation",
    "flask_ai_sse.cors",
    "flask_ai_sse.slots",
    "flask_ai_sse.usage",
    "flask_ai_sse.budgets",
    "flask_ai_sse.metrics",
    "flask_ai_sse.tracing",
    "flask_ai_sse.signals",
    "flask_ai_sse.providers",
    "flask_ai_sse.providers.openai",
    "flask_ai_sse.providers.anthropic",
    "flask_ai_sse.providers.gemini",
    "flask_ai_sse.engine",
    "flask_ai_sse.engine.custom",
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
