"""Stream answers from large language models to browsers over Server-Sent Events."""

from __future__ import annotations

from ._steps import ToolError
from ._tools import Tool
from ._version import __version__
from .chunks import Answer, ChatRequest, Chunk, Message, Usage
from .engine.custom import End, error_event
from .errors import (
    AISSEError,
    BudgetExceeded,
    ConfigurationError,
    InvalidOutput,
    NotFound,
    PayloadTooLarge,
    ProviderConnectionError,
    ProviderError,
    ProviderProtocolError,
    ProviderStatusError,
    ProviderTimeout,
    RequestError,
    StoreError,
    StreamGapError,
    StreamInterrupted,
    StreamTimeout,
    TooManyRequests,
    TooManyStreams,
    UnsupportedMediaType,
    ValidationError,
)
from .extension import AISSE, ChunkIterator
from .sse import Comment, ServerSentEvent
from .task import Task

__all__ = [
    "AISSE",
    "AISSEError",
    "Answer",
    "BudgetExceeded",
    "ChatRequest",
    "Chunk",
    "ChunkIterator",
    "Comment",
    "ConfigurationError",
    "End",
    "InvalidOutput",
    "Message",
    "NotFound",
    "PayloadTooLarge",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderStatusError",
    "ProviderTimeout",
    "RequestError",
    "ServerSentEvent",
    "StoreError",
    "StreamGapError",
    "StreamInterrupted",
    "StreamTimeout",
    "Task",
    "TooManyRequests",
    "TooManyStreams",
    "Tool",
    "ToolError",
    "UnsupportedMediaType",
    "Usage",
    "ValidationError",
    "__version__",
    "error_event",
]
