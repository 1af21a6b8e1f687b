"""The one exception tree of flask-ai-sse.

Lower-level errors (``requests``, ``redis``, JSON) are translated into these at
one boundary each, with ``raise ... from exc``::

    AISSEError
    ├── ConfigurationError           the app is set up wrongly (raised at start-up)
    ├── RequestError (4xx)           bad input, before any stream starts
    │   ├── ValidationError (400)
    │   ├── PayloadTooLarge (413)
    │   ├── UnsupportedMediaType (415)
    │   ├── NotFound (404)           unknown stream or conversation, or not yours
    │   └── TooManyRequests (429)    rate limit (AI_SSE_RATE_LIMIT)
    │       ├── TooManyStreams (429) concurrency cap (AI_SSE_MAX_STREAMS_PER_KEY)
    │       └── BudgetExceeded (429) token budget (AI_SSE_TOKEN_BUDGET)
    ├── ProviderError (502)          the upstream model provider failed
    │   ├── ProviderStatusError (502, or 429 when it keeps limiting us)
    │   ├── ProviderConnectionError (502)
    │   ├── ProviderTimeout (504)    connect, read-idle or total timeout
    │   └── ProviderProtocolError (502)  malformed stream, missing terminator
    ├── InvalidOutput (502)          structured output that does not match its schema
    ├── StreamTimeout (504)          the whole stream ran too long or went silent
    ├── StreamGapError (410)         a reader fell behind the bounded log
    ├── StreamInterrupted (500)      the stream's producer died (its worker was lost)
    └── StoreError (503)             the stream store (Redis) failed

Every error has a stable ``type`` (the ``type`` of the JSON error body and of
``event: error``), an HTTP ``status`` for errors raised before a stream starts,
and a ``message`` safe to show to a client: never a key nor an internal detail.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AISSEError",
    "BudgetExceeded",
    "ConfigurationError",
    "InvalidOutput",
    "NotFound",
    "PayloadTooLarge",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderStatusError",
    "ProviderTimeout",
    "RequestError",
    "StoreError",
    "StreamGapError",
    "StreamInterrupted",
    "StreamTimeout",
    "TooManyRequests",
    "TooManyStreams",
    "UnsupportedMediaType",
    "ValidationError",
]


class AISSEError(Exception):
    """Base class of every error the library raises."""

    type: str = "internal_error"
    status: int = 500
    #: Shown to clients. Subclasses override with something generic and safe.
    public_message: str = "Internal error."
    #: This error's message, safe to show to a client.
    message: str

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.public_message
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body shared by HTTP errors and ``event: error``."""
        return {"error": {"type": self.type, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        return {}


class ConfigurationError(AISSEError):
    type = "configuration_error"


class RequestError(AISSEError):
    type = "invalid_request"
    status = 400
    public_message = "Invalid request."


class ValidationError(RequestError):
    """Bad input. ``type`` is refined per kind of error (``missing_prompt``, ...)."""

    def __init__(self, message: str, *, type: str = "invalid_request", **details: Any) -> None:
        super().__init__(message, **details)
        self.type = type


class PayloadTooLarge(RequestError):
    type = "payload_too_large"
    status = 413
    public_message = "The request body is too large."


class UnsupportedMediaType(RequestError):
    type = "unsupported_media_type"
    status = 415
    public_message = "Send the request body as application/json."


class NotFound(RequestError):
    type = "not_found"
    status = 404
    public_message = "Not found."


class TooManyRequests(RequestError):
    type = "rate_limited"
    status = 429
    public_message = "Too many requests."
    #: Seconds after which the client may try again (the ``Retry-After`` header).
    retry_after: float

    def __init__(self, message: str | None = None, *, retry_after: float = 1, **details: Any):
        super().__init__(message, **details)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return _retry_after_header(self.retry_after)


class ProviderError(AISSEError):
    """The model provider failed. ``provider`` names it; the key never appears."""

    type = "provider_error"
    status = 502
    public_message = "The model provider failed."
    #: The provider's name (never its key).
    provider: str

    def __init__(self, message: str | None = None, *, provider: str = "", **details: Any):
        super().__init__(message, **details)
        self.provider = provider


class ProviderStatusError(ProviderError):
    """The provider answered an HTTP error status (after any retries)."""

    #: The provider's HTTP status.
    upstream_status: int
    #: The provider's ``Retry-After``, in seconds, when it sent one.
    retry_after: float | None

    def __init__(
        self,
        message: str | None = None,
        *,
        provider: str = "",
        upstream_status: int = 0,
        retry_after: float | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, provider=provider, **details)
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        if upstream_status == 429:
            self.type = "provider_rate_limited"
            self.status = 429
        elif upstream_status in (401, 403):
            self.type = "provider_auth_error"
        elif 400 <= upstream_status < 500:
            self.type = "provider_refused"

    @property
    def headers(self) -> dict[str, str]:
        return _retry_after_header(self.retry_after or 1) if self.status == 429 else {}


class ProviderConnectionError(ProviderError):
    type = "provider_unavailable"
    public_message = "Could not reach the model provider."


class ProviderTimeout(ProviderError):
    type = "timeout"
    status = 504
    public_message = "The model provider timed out."


class ProviderProtocolError(ProviderError):
    type = "provider_protocol_error"
    public_message = "The model provider sent a malformed stream."


class InvalidOutput(AISSEError):
    """The answer to a ``schema=`` request is not JSON, or does not match the schema."""

    type = "invalid_output"
    status = 502
    public_message = "The model's answer does not match the requested schema."


class StreamTimeout(AISSEError):
    type = "timeout"
    status = 504
    public_message = "The stream timed out."


class StoreError(AISSEError):
    type = "store_unavailable"
    status = 503
    public_message = "The stream store is unavailable."


class StreamGapError(AISSEError):
    """A reader fell behind the bounded log; what it missed is gone."""

    type = "stream_gap"
    status = 410
    public_message = "Events were dropped before this client read them."


class StreamInterrupted(AISSEError):
    """The stream's producer stopped beating: its worker was killed or its host lost."""

    type = "interrupted"
    status = 500
    public_message = "The stream was interrupted: the server producing it stopped."


class TooManyStreams(TooManyRequests):
    """The client key already has ``AI_SSE_MAX_STREAMS_PER_KEY`` generations running."""

    type = "too_many_streams"
    public_message = "Too many streams are open; try again when one has ended."


class BudgetExceeded(TooManyRequests):
    """The client key spent its ``AI_SSE_TOKEN_BUDGET``: before a stream (429 with
    ``Retry-After``), or while one runs (it ends with ``event: error`` of this type)."""

    type = "budget_exceeded"
    public_message = "The token budget is spent; try again when it renews."


def _retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, at least 1 (HTTP takes no fractions)."""
    return {"Retry-After": str(max(1, round(seconds)))}
