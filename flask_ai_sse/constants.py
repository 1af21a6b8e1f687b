"""Every configuration key, named once, with its default.

``AISSE`` resolves each key in ``init_app`` with the precedence
constructor argument > ``app.config`` > the default below. Every key is documented
with ``.. data::`` in ``docs/`` (``tests/test_config_docs.py`` checks it).
"""

from __future__ import annotations

from typing import Any, Final

EXTENSION_NAME: Final = "ai_sse"

# -- provider ----------------------------------------------------------------------------
PROVIDER: Final = "AI_SSE_PROVIDER"
MODEL: Final = "AI_SSE_MODEL"
API_KEY: Final = "AI_SSE_API_KEY"
BASE_URL: Final = "AI_SSE_BASE_URL"
PROVIDER_OPTIONS: Final = "AI_SSE_PROVIDER_OPTIONS"
CONNECT_TIMEOUT: Final = "AI_SSE_CONNECT_TIMEOUT"
READ_TIMEOUT: Final = "AI_SSE_READ_TIMEOUT"
TOTAL_TIMEOUT: Final = "AI_SSE_TOTAL_TIMEOUT"
MAX_RETRIES: Final = "AI_SSE_MAX_RETRIES"
RETRY_MAX_WAIT: Final = "AI_SSE_RETRY_MAX_WAIT"
FALLBACKS: Final = "AI_SSE_FALLBACKS"
POOL_SIZE: Final = "AI_SSE_POOL_SIZE"

# -- fake provider -----------------------------------------------------------------------
FAKE_DELAY: Final = "AI_SSE_FAKE_DELAY"
FAKE_RESPONSE: Final = "AI_SSE_FAKE_RESPONSE"

# -- wire format and engine --------------------------------------------------------------
KEEPALIVE: Final = "AI_SSE_KEEPALIVE"
RETRY: Final = "AI_SSE_RETRY"
STORE: Final = "AI_SSE_STORE"
STREAM_TTL: Final = "AI_SSE_STREAM_TTL"
STREAM_MAX_EVENTS: Final = "AI_SSE_STREAM_MAX_EVENTS"
DISCONNECT_GRACE: Final = "AI_SSE_DISCONNECT_GRACE"
DISCONNECT_POLICY: Final = "AI_SSE_DISCONNECT_POLICY"
STREAM_TIMEOUT: Final = "AI_SSE_STREAM_TIMEOUT"
FLUSH_INTERVAL: Final = "AI_SSE_FLUSH_INTERVAL"
PROGRESS_EVERY: Final = "AI_SSE_PROGRESS_EVERY"
SENTENCE_MODE: Final = "AI_SSE_SENTENCE_MODE"
STORE_OUTAGE_BUDGET: Final = "AI_SSE_STORE_OUTAGE_BUDGET"
REDIS_TIMEOUT: Final = "AI_SSE_REDIS_TIMEOUT"
REDIS_MAX_CONNECTIONS: Final = "AI_SSE_REDIS_MAX_CONNECTIONS"
REDIS_POOL_TIMEOUT: Final = "AI_SSE_REDIS_POOL_TIMEOUT"
PROTOCOL: Final = "AI_SSE_PROTOCOL"

# -- HTTP --------------------------------------------------------------------------------
URL_PREFIX: Final = "AI_SSE_URL_PREFIX"
REGISTER_BLUEPRINT: Final = "AI_SSE_REGISTER_BLUEPRINT"
RATE_LIMIT: Final = "AI_SSE_RATE_LIMIT"
MAX_BODY_BYTES: Final = "AI_SSE_MAX_BODY_BYTES"
MAX_PROMPT_CHARS: Final = "AI_SSE_MAX_PROMPT_CHARS"
MAX_MESSAGES: Final = "AI_SSE_MAX_MESSAGES"
MAX_MESSAGE_CHARS: Final = "AI_SSE_MAX_MESSAGE_CHARS"
MAX_TOKENS_LIMIT: Final = "AI_SSE_MAX_TOKENS_LIMIT"

# -- parts, tools, structured output (docs/tools.rst) -----------------------------------
MAX_PARTS: Final = "AI_SSE_MAX_PARTS"
MAX_IMAGE_BYTES: Final = "AI_SSE_MAX_IMAGE_BYTES"
MAX_IMAGES_BYTES: Final = "AI_SSE_MAX_IMAGES_BYTES"
IMAGE_MEDIA_TYPES: Final = "AI_SSE_IMAGE_MEDIA_TYPES"
IMAGE_URL_SCHEMES: Final = "AI_SSE_IMAGE_URL_SCHEMES"
TOOLS: Final = "AI_SSE_TOOLS"
TOOL_TIMEOUT: Final = "AI_SSE_TOOL_TIMEOUT"
MAX_STEPS: Final = "AI_SSE_MAX_STEPS"

# -- HTTP hardening (docs/security.rst) --------------------------------------------------
ALLOWED_MODELS: Final = "AI_SSE_ALLOWED_MODELS"
RATE_LIMIT_STORAGE: Final = "AI_SSE_RATE_LIMIT_STORAGE"
RATE_LIMIT_STRATEGY: Final = "AI_SSE_RATE_LIMIT_STRATEGY"
MAX_STREAMS_PER_KEY: Final = "AI_SSE_MAX_STREAMS_PER_KEY"
MAX_STREAMS_STORAGE: Final = "AI_SSE_MAX_STREAMS_STORAGE"
CORS_ORIGINS: Final = "AI_SSE_CORS_ORIGINS"
CORS_METHODS: Final = "AI_SSE_CORS_METHODS"
CORS_HEADERS: Final = "AI_SSE_CORS_HEADERS"
CORS_EXPOSE_HEADERS: Final = "AI_SSE_CORS_EXPOSE_HEADERS"
CORS_CREDENTIALS: Final = "AI_SSE_CORS_CREDENTIALS"
CORS_MAX_AGE: Final = "AI_SSE_CORS_MAX_AGE"

# -- persistence (``AISSE(app, db=db)``) -------------------------------------------------
TABLE_PREFIX: Final = "AI_SSE_TABLE_PREFIX"
PERSIST_INTERVAL: Final = "AI_SSE_PERSIST_INTERVAL"
PERSIST_EVERY: Final = "AI_SSE_PERSIST_EVERY"
HISTORY_MAX_MESSAGES: Final = "AI_SSE_HISTORY_MAX_MESSAGES"
HISTORY_MAX_CHARS: Final = "AI_SSE_HISTORY_MAX_CHARS"
HISTORY_MAX_TOKENS: Final = "AI_SSE_HISTORY_MAX_TOKENS"
RECONCILE_ON_START: Final = "AI_SSE_RECONCILE_ON_START"
SQLITE_WAL: Final = "AI_SSE_SQLITE_WAL"

# -- observability (docs/observability.rst) ----------------------------------------------
METRICS: Final = "AI_SSE_METRICS"
METRICS_ENDPOINT: Final = "AI_SSE_METRICS_ENDPOINT"
TRACING: Final = "AI_SSE_TRACING"
PRICES: Final = "AI_SSE_PRICES"
TOKEN_BUDGET: Final = "AI_SSE_TOKEN_BUDGET"
TOKEN_BUDGET_STORAGE: Final = "AI_SSE_TOKEN_BUDGET_STORAGE"

DEFAULTS: Final[dict[str, Any]] = {
    # provider
    PROVIDER: "fake",
    MODEL: None,
    API_KEY: None,
    BASE_URL: None,
    PROVIDER_OPTIONS: {},
    CONNECT_TIMEOUT: 10.0,
    READ_TIMEOUT: 120.0,
    TOTAL_TIMEOUT: 600.0,
    MAX_RETRIES: 2,
    RETRY_MAX_WAIT: 20.0,
    FALLBACKS: [],
    POOL_SIZE: 1000,
    # fake provider
    FAKE_DELAY: 0.02,
    FAKE_RESPONSE: None,
    # wire format and engine
    KEEPALIVE: 15.0,
    RETRY: 3000,
    STORE: "memory",
    STREAM_TTL: 120.0,
    STREAM_MAX_EVENTS: 20000,
    STORE_OUTAGE_BUDGET: 10.0,
    REDIS_TIMEOUT: 1.0,
    REDIS_MAX_CONNECTIONS: 50,
    REDIS_POOL_TIMEOUT: 2.0,
    DISCONNECT_GRACE: 5.0,
    DISCONNECT_POLICY: "cancel",
    STREAM_TIMEOUT: 600.0,
    FLUSH_INTERVAL: 0.0,
    PROGRESS_EVERY: 0,
    SENTENCE_MODE: False,
    PROTOCOL: "default",
    # HTTP
    URL_PREFIX: "/ai",
    REGISTER_BLUEPRINT: True,
    RATE_LIMIT: None,
    MAX_BODY_BYTES: 262144,
    MAX_PROMPT_CHARS: 32000,
    MAX_MESSAGES: 200,
    MAX_MESSAGE_CHARS: 32000,
    MAX_TOKENS_LIMIT: 1000000,
    # parts, tools, structured output
    MAX_PARTS: 16,
    MAX_IMAGE_BYTES: 5 * 1024 * 1024,
    MAX_IMAGES_BYTES: 20 * 1024 * 1024,
    IMAGE_MEDIA_TYPES: ("image/png", "image/jpeg", "image/gif", "image/webp"),
    IMAGE_URL_SCHEMES: ("http", "https"),
    TOOLS: (),
    TOOL_TIMEOUT: 30.0,
    MAX_STEPS: 8,
    # HTTP hardening (docs/security.rst)
    ALLOWED_MODELS: None,
    RATE_LIMIT_STORAGE: "memory://",
    RATE_LIMIT_STRATEGY: "fixed-window",
    MAX_STREAMS_PER_KEY: None,
    MAX_STREAMS_STORAGE: None,
    CORS_ORIGINS: None,
    CORS_METHODS: ("GET", "POST"),
    CORS_HEADERS: ("Content-Type", "Last-Event-ID"),
    CORS_EXPOSE_HEADERS: ("Retry-After",),
    CORS_CREDENTIALS: False,
    CORS_MAX_AGE: 600,
    # persistence (``AISSE(app, db=db)``)
    TABLE_PREFIX: "ai_sse_",
    PERSIST_INTERVAL: 1.0,
    PERSIST_EVERY: 20,
    HISTORY_MAX_MESSAGES: 50,
    HISTORY_MAX_CHARS: 100000,
    HISTORY_MAX_TOKENS: 0,
    RECONCILE_ON_START: True,
    SQLITE_WAL: True,
    # observability (docs/observability.rst)
    METRICS: False,
    METRICS_ENDPOINT: False,
    TRACING: True,
    PRICES: {},
    TOKEN_BUDGET: None,
    TOKEN_BUDGET_STORAGE: None,
}
