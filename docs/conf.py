"""Sphinx configuration."""

from __future__ import annotations

import importlib.metadata

project = "flask-ai-sse"
author = "The flask-ai-sse developers"
copyright = "2026, " + author
release = importlib.metadata.version("flask-ai-sse")
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
