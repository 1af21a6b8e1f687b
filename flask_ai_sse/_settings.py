"""Every ``AI_SSE_*`` key, parsed and checked once, into typed settings.

``init_app`` calls :func:`read_settings` and nothing else reads ``app.config``
for these keys afterwards. Precedence: a constructor argument > ``app.config``
> the default in :data:`flask_ai_sse.constants.DEFAULTS` (the one place defaults
live); the resolved value is written back to ``app.config``, so an app can
see what it runs with. A value of the wrong type or out of range raises
:class:`~flask_ai_sse.errors.ConfigurationError` naming the key and what it
accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from . import constants as C
from ._cors import CorsPolicy
from ._parts import PartLimits
from ._redis_client import SCHEMES as REDIS_SCHEMES
from ._redis_client import RedisOptions
from ._usage import parse_prices
from ._validation import Limits, allowed_model_names
from .engine import EngineSettings
from .errors import ConfigurationError
from .protocols import PROTOCOLS
from .providers.base import ProviderConfig


@dataclass(frozen=True)
class StoreSettings:
    """The stream log: ``memory``, a ``redis://`` URL, or a ready store object."""

    url: Any
    ttl: float
    max_events: int
    #: How the Redis pools behave (``AI_SSE_REDIS_*``).
    redis: RedisOptions
    #: Seconds a store outage may last without ending running streams.
    outage_budget: float

    @property
    def redis_url(self) -> str | None:
        url = self.url
        return url if isinstance(url, str) and url.startswith(REDIS_SCHEMES) else None


@dataclass(frozen=True)
class GuardSettings:
    """The routes' rate limit and per-key concurrency cap."""

    rate_limit: str | None
    rate_limit_storage: str
    rate_limit_strategy: str
    max_streams_per_key: int | None
    #: Where slots are counted: ``memory`` or a Redis URL.
    slots_url: str
    #: How long a Redis slot outlives a worker that died holding it.
    slot_lease: float
    #: How the Redis pools of the slots and the rate limit behave.
    redis: RedisOptions


@dataclass(frozen=True)
class PersistenceSettings:
    """How conversations are stored (used only with ``AISSE(app, db=db)``)."""

    table_prefix: str
    interval: float
    every: int
    #: The history sent upstream: at most these many messages, characters and tokens
    #: (0: no bound).
    history_max_messages: int
    history_max_chars: int
    history_max_tokens: int
    #: Seconds after its last write that a ``streaming`` message counts as interrupted.
    reconcile_after: float
    reconcile_on_start: bool
    sqlite_wal: bool


@dataclass(frozen=True)
class ToolSettings:
    """Tools on the routes and the step loop (docs/tools.rst)."""

    names: tuple[str, ...]
    timeout: float
    max_steps: int


@dataclass(frozen=True)
class ObservabilitySettings:
    """Metrics, spans and token budgets (docs/observability.rst)."""

    #: ``False``, ``True`` (prometheus_client's global registry) or a ``CollectorRegistry``.
    metrics: Any
    metrics_endpoint: bool
    tracing: bool
    #: ``"200000/day"``, or ``None``: no budget.
    token_budget: str | None
    #: Where budgets are counted: ``memory`` or a Redis URL.
    budget_url: str


@dataclass(frozen=True)
class Settings:
    """One app's settings, the result of reading its config once."""

    provider: ProviderConfig
    fallbacks: tuple[ProviderConfig, ...]
    engine: EngineSettings
    store: StoreSettings
    limits: Limits
    guards: GuardSettings
    cors: CorsPolicy | None
    persistence: PersistenceSettings
    url_prefix: str
    register_blueprint: bool
    #: The wire protocol of streams whose request does not choose one.
    protocol: str
    tools: ToolSettings
    observability: ObservabilitySettings


#: How old a ``streaming`` message must be to count as interrupted when the stream
#: timeout is off (0): no live stream goes a day without a write.
UNBOUNDED_RECONCILE_AFTER = 86_400.0


class _Reader:
    """Reads keys with the precedence argument > config > default, and checks them."""

    def __init__(self, config: MutableMapping[str, Any], overrides: Mapping[str, Any]) -> None:
        self.config = config
        self.overrides = overrides

    def raw(self, key: str) -> Any:
        override = self.overrides.get(key)
        if override is not None:
            self.config[key] = override
            return override
        return self.config.setdefault(key, C.DEFAULTS[key])

    def number(self, key: str, *, minimum: float = 0, above: bool = False) -> float:
        value = self.raw(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (value <= minimum if above else value < minimum)
        ):
            bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
            raise ConfigurationError(f"{key} must be a number {bound}, not {value!r}.")
        return float(value)

    def integer(self, key: str, *, minimum: int = 0, optional: bool = False) -> int | None:
        value = self.raw(key)
        if optional and value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = f"an integer of at least {minimum}" + (" or None" if optional else "")
            raise ConfigurationError(f"{key} must be {what}, not {value!r}.")
        return value

    def count(self, key: str, *, minimum: int = 0) -> int:
        value = self.integer(key, minimum=minimum)
        assert value is not None
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise ConfigurationError(f"{key} must be True or False, not {value!r}.")
        return value

    def text(self, key: str, *, optional: bool = False) -> str | None:
        value = self.raw(key)
        if optional and value is None:
            return None
        if not isinstance(value, str) or not value:
            what = "a non-empty string" + (" or None" if optional else "")
            raise ConfigurationError(f"{key} must be {what}, not {value!r}.")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.raw(key)
        if value not in allowed:
            raise ConfigurationError(f"{key} must be one of {', '.join(allowed)}, not {value!r}.")
        return str(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{key} must be a dict, not {value!r}.")
        return dict(value)


def read_settings(config: MutableMapping[str, Any], overrides: Mapping[str, Any]) -> Settings:
    """Parse and check every ``AI_SSE_*`` key of ``config`` once (see the module's docs)."""
    r = _Reader(config, overrides)
    engine = EngineSettings(
        keepalive=r.number(C.KEEPALIVE, above=True),
        retry=r.count(C.RETRY),
        disconnect_grace=r.number(C.DISCONNECT_GRACE),
        disconnect_policy=r.choice(C.DISCONNECT_POLICY, ("cancel", "finish")),
        total_timeout=r.number(C.STREAM_TIMEOUT),
        silence_timeout=r.number(C.READ_TIMEOUT),
        flush_interval=r.number(C.FLUSH_INTERVAL),
        progress_every=r.count(C.PROGRESS_EVERY),
        sentence_mode=r.flag(C.SENTENCE_MODE),
        prices=parse_prices(r.mapping(C.PRICES)),
        store_outage_budget=r.number(C.STORE_OUTAGE_BUDGET),
    )
    redis_timeout = r.number(C.REDIS_TIMEOUT, above=True)
    store = StoreSettings(
        url=r.raw(C.STORE),
        ttl=r.number(C.STREAM_TTL, above=True),
        max_events=r.count(C.STREAM_MAX_EVENTS, minimum=1),
        redis=RedisOptions(
            socket_timeout=redis_timeout,
            connect_timeout=redis_timeout,
            max_connections=r.count(C.REDIS_MAX_CONNECTIONS, minimum=2),
            pool_timeout=r.number(C.REDIS_POOL_TIMEOUT, above=True),
        ),
        outage_budget=engine.store_outage_budget,
    )
    return Settings(
        provider=_provider(r),
        fallbacks=tuple(_provider(r, entry) for entry in _fallbacks(r)),
        engine=engine,
        store=store,
        limits=Limits(
            max_body_bytes=r.count(C.MAX_BODY_BYTES, minimum=1),
            max_prompt_chars=r.count(C.MAX_PROMPT_CHARS, minimum=1),
            max_messages=r.count(C.MAX_MESSAGES, minimum=1),
            max_message_chars=r.count(C.MAX_MESSAGE_CHARS, minimum=1),
            max_tokens=r.count(C.MAX_TOKENS_LIMIT, minimum=1),
            allowed_models=allowed_model_names(r.raw(C.ALLOWED_MODELS)),
            parts=PartLimits.build(
                max_parts=r.count(C.MAX_PARTS, minimum=1),
                max_image_bytes=r.count(C.MAX_IMAGE_BYTES, minimum=1),
                max_total_image_bytes=r.count(C.MAX_IMAGES_BYTES, minimum=1),
                media_types=_names(r, C.IMAGE_MEDIA_TYPES),
                url_schemes=_names(r, C.IMAGE_URL_SCHEMES),
            ),
        ),
        guards=_guards(r, store, engine),
        cors=CorsPolicy.from_config(
            r.raw(C.CORS_ORIGINS),
            methods=r.raw(C.CORS_METHODS),
            headers=r.raw(C.CORS_HEADERS),
            expose_headers=r.raw(C.CORS_EXPOSE_HEADERS),
            credentials=r.raw(C.CORS_CREDENTIALS),
            max_age=r.raw(C.CORS_MAX_AGE),
        ),
        persistence=_persistence(r, engine),
        url_prefix=r.required_text(C.URL_PREFIX),
        register_blueprint=r.flag(C.REGISTER_BLUEPRINT),
        protocol=r.choice(C.PROTOCOL, tuple(PROTOCOLS)),
        tools=ToolSettings(
            names=tuple(_names(r, C.TOOLS)),
            timeout=r.number(C.TOOL_TIMEOUT, above=True),
            max_steps=r.count(C.MAX_STEPS, minimum=1),
        ),
        observability=_observability(r, store),
    )


def _names(r: _Reader, key: str) -> list[str]:
    """A list of strings (a lone string counts as one)."""
    value = r.raw(key)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple | set | frozenset) or not all(
        isinstance(n, str) for n in names
    ):
        raise ConfigurationError(f"{key} must be a list of strings, not {value!r}.")
    return list(names)


def _fallbacks(r: _Reader) -> list[Mapping[str, Any]]:
    value = r.raw(C.FALLBACKS)
    if not isinstance(value, list | tuple) or not all(isinstance(e, Mapping) for e in value):
        raise ConfigurationError(
            f"{C.FALLBACKS} must be a list of dicts (provider, model, api_key, base_url,"
            f" options), not {value!r}."
        )
    return list(value)


def _provider(r: _Reader, entry: Mapping[str, Any] | None = None) -> ProviderConfig:
    """The primary provider, or a fallback ``entry`` (its own name, model, key, URL, options)."""
    primary = r.raw(C.PROVIDER)
    entry = entry or {}
    name = entry.get("provider", primary)
    if not isinstance(name, str):
        raise ConfigurationError(f"{C.PROVIDER} must be a provider's name, not {name!r}.")
    same = name == primary
    # A fallback's options are its own: the primary's (extra headers, ...) may not fit it.
    options = dict(entry.get("options", r.mapping(C.PROVIDER_OPTIONS) if same else {}))
    if name == "fake":
        options.setdefault("delay", r.number(C.FAKE_DELAY))
        response = r.text(C.FAKE_RESPONSE, optional=True)
        if response:
            options.setdefault("response", response)
    return ProviderConfig(
        name=name,
        model=entry.get("model", r.text(C.MODEL, optional=True) if same else None),
        api_key=entry.get("api_key", r.text(C.API_KEY, optional=True) if same else None),
        base_url=entry.get("base_url", r.text(C.BASE_URL, optional=True) if same else None),
        connect_timeout=r.number(C.CONNECT_TIMEOUT, above=True),
        read_timeout=r.number(C.READ_TIMEOUT),
        total_timeout=r.number(C.TOTAL_TIMEOUT),
        max_retries=r.count(C.MAX_RETRIES),
        retry_max_wait=r.number(C.RETRY_MAX_WAIT),
        pool_size=r.count(C.POOL_SIZE, minimum=1),
        options=options,
    )


def _guards(r: _Reader, store: StoreSettings, engine: EngineSettings) -> GuardSettings:
    slots_url = r.text(C.MAX_STREAMS_STORAGE, optional=True) or store.redis_url or "memory"
    longest = engine.total_timeout or 3600.0
    return GuardSettings(
        rate_limit=r.text(C.RATE_LIMIT, optional=True),
        rate_limit_storage=r.required_text(C.RATE_LIMIT_STORAGE),
        rate_limit_strategy=r.required_text(C.RATE_LIMIT_STRATEGY),
        max_streams_per_key=r.integer(C.MAX_STREAMS_PER_KEY, minimum=1, optional=True),
        slots_url=slots_url,
        slot_lease=longest + engine.disconnect_grace + 60.0,
        redis=store.redis,
    )


def _observability(r: _Reader, store: StoreSettings) -> ObservabilitySettings:
    metrics = r.raw(C.METRICS)
    if metrics is not True and metrics is not False and not hasattr(metrics, "register"):
        raise ConfigurationError(
            f"{C.METRICS} must be True, False or a prometheus_client CollectorRegistry,"
            f" not {metrics!r}."
        )
    endpoint = r.flag(C.METRICS_ENDPOINT)
    if endpoint and metrics is False:
        raise ConfigurationError(f"{C.METRICS_ENDPOINT} needs {C.METRICS} = True.")
    return ObservabilitySettings(
        metrics=metrics,
        metrics_endpoint=endpoint,
        tracing=r.flag(C.TRACING),
        token_budget=r.text(C.TOKEN_BUDGET, optional=True),
        budget_url=r.text(C.TOKEN_BUDGET_STORAGE, optional=True) or store.redis_url or "memory",
    )


def _persistence(r: _Reader, engine: EngineSettings) -> PersistenceSettings:
    timeout = engine.total_timeout
    return PersistenceSettings(
        table_prefix=r.required_text(C.TABLE_PREFIX),
        interval=r.number(C.PERSIST_INTERVAL),
        every=r.count(C.PERSIST_EVERY),
        history_max_messages=r.count(C.HISTORY_MAX_MESSAGES),
        history_max_chars=r.count(C.HISTORY_MAX_CHARS),
        history_max_tokens=r.count(C.HISTORY_MAX_TOKENS),
        reconcile_after=timeout if timeout > 0 else UNBOUNDED_RECONCILE_AFTER,
        reconcile_on_start=r.flag(C.RECONCILE_ON_START),
        sqlite_wal=r.flag(C.SQLITE_WAL),
    )


def read_table_prefix(config: MutableMapping[str, Any] | None, override: str | None) -> str:
    """``AI_SSE_TABLE_PREFIX`` alone: the persistence models are made with the extension,
    before ``init_app`` reads the rest (``db.create_all()`` must see them)."""
    return _Reader({} if config is None else config, {C.TABLE_PREFIX: override}).required_text(
        C.TABLE_PREFIX
    )


def read_provider(config: MutableMapping[str, Any], name: str) -> ProviderConfig:
    """Settings for provider ``name`` as a fallback entry reads them: the app's timeouts,
    not the primary provider's model, key or URL (e.g. ``flask ai-sse ask --provider``)."""
    return _provider(_Reader(config, {}), {"provider": name})
