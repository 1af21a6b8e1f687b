"""Stream answers from large language models to browsers over Server-Sent Events."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("flask-ai-sse")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
