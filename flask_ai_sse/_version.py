"""The installed distribution's version, in a module of its own so that nothing
imports the package root (and everything it imports) just to read it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flask-ai-sse")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
