"""The package's import graph: no run-time cycles, and a core path free of optional features."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import flask_ai_sse

PACKAGE_DIR = Path(flask_ai_sse.__path__[0])
ROOT = "flask_ai_sse"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def runtime_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports when it runs: every import statement, at any
    depth (lazy ones too), except those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path)
    package = name if is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            for alias in node.names:  # ``from . import constants`` imports a module
                found.add(f"{target}.{alias.name}")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = set()
        for target in runtime_imports(path):
            # Importing a.b.c runs the packages a.b and a.b.c too (the root aside:
            # it is the facade over everything, imported first by any user).
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if (
                    candidate in files
                    and candidate != name
                    and not name.startswith(candidate + ".")
                ):
                    edges.add(candidate)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lazy_and_relative_imports_count_but_type_checking_ones_do_not(tmp_path):
    module = PACKAGE_DIR / "_blueprint.py"
    imports = runtime_imports(module)
    assert "flask_ai_sse._guards" in imports
    assert "flask_ai_sse.extension" not in imports  # only under TYPE_CHECKING


def test_a_stream_and_an_ask_without_a_database_never_load_persistence():
    code = textwrap.dedent(
        """
        import sys
        from flask import Flask
        from flask_ai_sse import AISSE

        app = Flask("core")
        app.config.update(AI_SSE_FAKE_DELAY=0)
        ai = AISSE(app)
        client = app.test_client()
        body = b"".join(client.post("/ai/stream", json={"prompt": "hi"}).response)
        assert b"data: [DONE]" in body, body
        assert client.post("/ai/ask", json={"prompt": "hi"}).status_code == 200
        with app.test_request_context():
            assert ai.ask("hi").text
        loaded = sorted(m for m in sys.modules if m.startswith("flask_ai_sse.persistence"))
        assert loaded == [], loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
