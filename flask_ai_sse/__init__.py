"""Stream answers from large language models to browsers over Server-Sent Events."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# First, so that submodules may import it while the package initializes.
try:
    __version__ = version("flask-ai-sse")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .chunks import Answer, ChatRequest, Chunk, Usage
from .engine.custom import End, error_event
from .errors import (
    AISSEError,
    ConfigurationError,
    InvalidOutput,
    NotFound,
    ProviderError,
    ProviderTimeout,
    StoreError,
    StreamTimeout,
    ValidationError,
)
from .extension import AISSE
from .sse import Comment, ServerSentEvent
from .steps import ToolError
from .tools import Tool

__all__ = [
    "AISSE",
    "AISSEError",
    "Answer",
    "ChatRequest",
    "Chunk",
    "Comment",
    "ConfigurationError",
    "End",
    "InvalidOutput",
    "NotFound",
    "ProviderError",
    "ProviderTimeout",
    "ServerSentEvent",
    "StoreError",
    "StreamTimeout",
    "Tool",
    "ToolError",
    "Usage",
    "ValidationError",
    "__version__",
    "error_event",
]
