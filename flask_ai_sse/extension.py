"""The Flask glue: ``AISSE`` reads config, owns per-app state, and makes responses.

One ``AISSE`` object may serve several apps; everything per app lives in
``app.extensions["ai_sse"]`` (an :class:`AppState`). Data flows one way:
request -> validation -> provider -> engine -> reader -> response.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, has_request_context, jsonify, request
from flask import copy_current_request_context as _copy_request_context

from . import constants as C
from .chunks import Answer, ChatRequest, Chunk, Message
from .context import requested_event_id
from .deployment import check_at_first_request
from .engine import Engine, EngineSettings, Generation, Observer, create_store
from .engine.custom import CustomStream
from .engine.reader import StreamReader
from .errors import AISSEError, ConfigurationError
from .guards import Guards
from .providers import Provider, ProviderConfig, build_provider
from .providers.base import ChunkStream
from .redis_client import options_from_config as redis_options
from .sse import encode, encode_comment
from .validation import AskParams, Limits, validate

if TYPE_CHECKING:
    from .persistence import ConversationStore, Persistence
    from .task import Task

logger = logging.getLogger("flask_ai_sse")

#: The headers of every event-stream response (CONTRACT.md). No hop-by-hop ones.
SSE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_OWNER_KEY = "flask_ai_sse.owner"


@dataclass
class AppState:
    """What one app's registration holds: resolved config, provider, engine."""

    extension: AISSE
    config: dict[str, Any]
    provider: Provider
    engine: Engine
    limits: Limits
    observers: list[Observer] = field(default_factory=list)
    guards: Guards = field(default_factory=Guards)
    persistence: Persistence | None = None


class ChunkIterator(Iterator[Chunk]):
    """What :meth:`AISSE.stream` returns: chunks, and ``close()`` closes the upstream."""

    def __init__(self, stream: ChunkStream) -> None:
        self._stream = stream
        self._it = iter(stream)
        self.model = stream.model
        self.provider = stream.provider
        self.is_closed = False

    def __next__(self) -> Chunk:
        if self.is_closed:
            raise StopIteration
        try:
            return next(self._it)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            close = getattr(self._it, "close", None)
            if close is not None:
                close()
            self._stream.close()

    def __enter__(self) -> ChunkIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _setting(app: Flask, key: str, override: Any) -> Any:
    """Constructor argument > app.config > default; the result is written back to config."""
    if override is not None:
        app.config[key] = override
        return override
    return app.config.setdefault(key, C.DEFAULTS[key])


class AISSE:
    """The flask-ai-sse extension.

    ``ai = AISSE(app)`` or ``ai = AISSE(); ai.init_app(app)``. Keyword arguments
    override the matching ``AI_SSE_*`` config keys for every app this object
    serves; ``db`` (Flask-SQLAlchemy) turns persistence on and ``limiter``
    (Flask-Limiter) supplies storage and key function for the routes' limits.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        limiter: Any = None,
        provider: str | Provider | None = None,
        model: str | None = None,
        store: str | Any = None,
        url_prefix: str | None = None,
        register_blueprint: bool | None = None,
        table_prefix: str | None = None,
    ) -> None:
        self.db = db
        self.limiter = limiter
        self._overrides: dict[str, Any] = {
            C.PROVIDER: provider if isinstance(provider, str) else None,
            C.MODEL: model,
            C.STORE: store,
            C.URL_PREFIX: url_prefix,
            C.REGISTER_BLUEPRINT: register_blueprint,
            C.TABLE_PREFIX: table_prefix,
        }
        #: With ``db``: the persistence models, classes on the app's own ``db.Model``.
        self.Conversation: Any = None
        self.Message: Any = None
        if db is not None:
            from .persistence.state import define_app_models

            models = define_app_models(db, table_prefix, app)
            self.Conversation, self.Message = models.conversation, models.message
        self._provider_instance = provider if isinstance(provider, Provider) else None
        self._authorize: Callable[[], str | None] | None = None
        if app is not None:
            self.init_app(app)

    # -- registration -----------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: read config once, build provider, store and engine."""
        if C.EXTENSION_NAME in app.extensions:
            raise RuntimeError(
                "A 'AISSE' instance has already been registered on this Flask app."
                " Import and use that instance instead."
            )
        config = {key: _setting(app, key, self._overrides.get(key)) for key in C.DEFAULTS}
        provider = self._provider_instance or build_provider(
            _provider_config(config), [_provider_config(config, f) for f in config[C.FALLBACKS]]
        )
        engine = Engine(
            create_store(
                config[C.STORE],
                ttl=float(config[C.STREAM_TTL]),
                max_events=int(config[C.STREAM_MAX_EVENTS]),
                redis_options=redis_options(config),
                outage_budget=float(config[C.STORE_OUTAGE_BUDGET]),
            ),
            EngineSettings(
                keepalive=float(config[C.KEEPALIVE]),
                retry=int(config[C.RETRY]),
                disconnect_grace=float(config[C.DISCONNECT_GRACE]),
                disconnect_policy=_choice(
                    C.DISCONNECT_POLICY, config[C.DISCONNECT_POLICY], ("cancel", "finish")
                ),
                total_timeout=float(config[C.STREAM_TIMEOUT]),
                silence_timeout=float(config[C.READ_TIMEOUT]),
                flush_interval=float(config[C.FLUSH_INTERVAL]),
                progress_every=int(config[C.PROGRESS_EVERY]),
                sentence_mode=bool(config[C.SENTENCE_MODE]),
                store_outage_budget=float(config[C.STORE_OUTAGE_BUDGET]),
            ),
        )
        limits = Limits.from_config(config, default_model=provider.model)
        state = AppState(
            extension=self, config=config, provider=provider, engine=engine, limits=limits
        )
        app.extensions[C.EXTENSION_NAME] = state
        state.guards = Guards.setup(self, app, state)
        if self.db is not None:
            from .persistence import Persistence

            state.persistence = Persistence(app, self, config)
            # Whichever worker ends a stream whose producer died marks its message too.
            engine.store.on_interrupted.append(state.persistence.store.mark_interrupted)
        app.register_error_handler(AISSEError, render_error)
        check_at_first_request(app, shared_store=engine.store.shared)
        if config[C.REGISTER_BLUEPRINT]:
            app.register_blueprint(self.create_blueprint(), url_prefix=config[C.URL_PREFIX])

    def create_blueprint(self, *, decorators: Sequence[Callable[..., Any]] = ()) -> Blueprint:
        """The routes as a blueprint, for an app that registers them itself.

        With ``AI_SSE_REGISTER_BLUEPRINT = False``::

            app.register_blueprint(ai.create_blueprint(decorators=[login_required]),
                                   url_prefix="/ai")

        ``decorators`` wrap every view, outermost first, before the rate limit and
        the concurrency cap: a request they refuse costs nothing.
        """
        from .blueprint import create_blueprint

        return create_blueprint(self, decorators=decorators)

    def state(self, app: Flask | None = None) -> AppState:
        """This extension's state for ``app`` (default: the current app)."""
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        state = app.extensions.get(C.EXTENSION_NAME)
        if state is None or state.extension is not self:
            raise RuntimeError(
                "The current Flask app is not registered with this 'AISSE' instance."
                " Did you forget to call 'init_app', or did you create multiple"
                " 'AISSE' instances?"
            )
        return state  # type: ignore[no-any-return]

    def authorize(self, hook: Callable[[], str | None]) -> Callable[[], str | None]:
        """Register the hook that says who is asking; use as a decorator.

        It runs in the request context of every stream, attach, cancel and ask
        call and returns the owner key (a user or session id), or ``None`` for
        anonymous use; it may ``abort(401)`` itself. Streams (and conversations)
        are only visible to the owner who started them: anyone else gets 404.
        """
        self._authorize = hook
        return hook

    def current_owner(self) -> str | None:
        """The owner key of the current request, from the :meth:`authorize` hook.

        The hook runs once per request; its answer is kept in the WSGI environ.
        """
        if self._authorize is None or not has_request_context():
            return None
        environ = request.environ
        if _OWNER_KEY not in environ:
            owner = self._authorize()
            environ[_OWNER_KEY] = None if owner is None else str(owner)
        return environ[_OWNER_KEY]  # type: ignore[no-any-return]

    # -- the Python API ---------------------------------------------------------

    def _request(self, state: AppState, params: AskParams, options: dict[str, Any]) -> ChatRequest:
        return ChatRequest(
            messages=params.messages,
            model=params.model or state.provider.model,
            system=params.system,
            temperature=params.temperature,
            max_tokens=params.max_tokens,
            options=options,
        )

    def _params(
        self,
        state: AppState,
        prompt: str | None,
        messages: list[Message] | None,
        system: str | None,
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> AskParams:
        return validate(
            prompt=prompt,
            messages=messages,
            system=system,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            limits=state.limits,
        )

    def ask_stream(
        self,
        prompt: str | None = None,
        *,
        messages: list[Message] | None = None,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        conversation: Any = None,
        **options: Any,
    ) -> Response:
        """Stream an answer as an SSE response (see CONTRACT.md for the wire format).

        A request carrying a ``Last-Event-ID`` of a live stream (a browser
        ``EventSource`` reconnecting) resumes that stream instead of starting a
        second generation. A provider failure before the first byte raises a
        :class:`~flask_ai_sse.errors.ProviderError`, which the registered
        error handler renders as a 502/504/429 JSON response.
        """
        state = self.state()
        params = self._params(state, prompt, messages, system, model, temperature, max_tokens)
        if conversation is not None:
            params.conversation_id = str(getattr(conversation, "id", conversation))
        return self.serve(params, options=options, state=state)

    def serve(
        self,
        params: AskParams,
        *,
        options: dict[str, Any] | None = None,
        owner: str | None = None,
        state: AppState | None = None,
    ) -> Response:
        """Resume the stream the request's ``Last-Event-ID`` names, or start a new one."""
        state = state or self.state()
        resumed = self._resume_from_request(state)
        if resumed is not None:
            return resumed
        if owner is None:
            owner = self.current_owner()
        generation = self.start_generation(params, options=options, owner=owner, state=state)
        return self.sse_response(state.engine.reader(generation.stream_id, owner=owner))

    def start_generation(
        self,
        params: AskParams,
        *,
        options: dict[str, Any] | None = None,
        owner: str | None = None,
        state: AppState | None = None,
    ) -> Generation:
        """Open the upstream request (status known on return) and start producing.

        With ``params.conversation_id`` (and persistence on), the turn is stored
        first and the conversation's history goes upstream as context.
        """
        from .persistence.observer import begin_turn

        state = state or self.state()
        state.engine.check_store()  # a store that is down must not cost an upstream request
        with begin_turn(state, params, owner=owner, options=options) as turn:
            chunks = state.provider.open(self._request(state, turn.params, turn.options))
            return state.engine.start(
                chunks,
                stream_id=turn.stream_id,
                start=turn.start,
                meta={"owner": owner},
                observers=[*state.observers, *turn.observers],
            )

    def attach(self, stream_id: str, after: int = 0) -> Response:
        """Follow a running or recently finished stream, replaying events after ``after``.

        Only the stream's owner (see :meth:`authorize`) may; others get a 404.
        """
        state = self.state()
        # The hook runs before the lookup, so that its 401 cannot tell which ids exist.
        owner = self.current_owner()
        return self.sse_response(state.engine.reader(stream_id, after, owner=owner))

    def cancel(self, stream_id: str) -> bool:
        """Stop a generation and its upstream request; False when unknown or not yours."""
        owner = self.current_owner()  # before the lookup, as in attach()
        return self.state().engine.cancel(stream_id, owner=owner)

    def _resume_from_request(self, state: AppState) -> Response | None:
        if not has_request_context():
            return None
        parsed = requested_event_id()
        if parsed is None:
            return None
        # A reconnect to a stream that is gone is a 404: no second generation behind its back.
        return self.attach(*parsed)

    def stream(
        self,
        prompt: str | None = None,
        *,
        messages: list[Message] | None = None,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **options: Any,
    ) -> ChunkIterator:
        """Normalized chunks for a custom view; closing the iterator closes the upstream."""
        state = self.state()
        params = self._params(state, prompt, messages, system, model, temperature, max_tokens)
        return ChunkIterator(state.provider.open(self._request(state, params, options)))

    def ask(
        self,
        prompt: str | None = None,
        *,
        messages: list[Message] | None = None,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **options: Any,
    ) -> Answer:
        """The whole answer, without streaming."""
        state = self.state()
        params = self._params(state, prompt, messages, system, model, temperature, max_tokens)
        return self.complete(params, options=options, state=state)

    def complete(
        self,
        params: AskParams,
        *,
        options: dict[str, Any] | None = None,
        state: AppState | None = None,
    ) -> Answer:
        """The whole answer to already validated parameters (stored with a conversation)."""
        from .persistence.observer import begin_turn

        state = state or self.state()
        with begin_turn(state, params, owner=self.current_owner(), options=options) as turn:
            answer = state.provider.complete(self._request(state, turn.params, turn.options))
            turn.answered(answer)
            return answer

    @property
    def conversations(self) -> ConversationStore:
        """The current app's conversations and messages (persistence: ``AISSE(app, db=db)``)."""
        persistence = self.state().persistence
        if persistence is None:
            raise RuntimeError("Conversations need persistence: create AISSE(app, db=db).")
        return persistence.store

    def task(self) -> Task:
        """A fluent builder: ``ai.task().system(...).prompt(...).stream()``."""
        from .task import Task

        return Task(self)

    # -- responses --------------------------------------------------------------

    def sse_response(
        self, body: Iterable[bytes], *, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Wrap an iterable of encoded bytes in a response with the event-stream headers."""
        response = Response(body, content_type=SSE_CONTENT_TYPE, direct_passthrough=True)
        response.headers.update(SSE_HEADERS)
        if headers:
            response.headers.update(headers)
        return response

    def event_stream(
        self,
        iterable: Iterable[Any],
        *,
        headers: Mapping[str, str] | None = None,
        retry: int | None = None,
        keepalive: float | None = None,
        keepalive_text: str = "keepalive",
        flush_interval: float | None = None,
    ) -> Response:
        """Serve a view's own events with the same headers, keepalive and disconnect handling.

        See :mod:`flask_ai_sse.engine.custom` for what ``iterable`` may yield.
        The iterable runs with a copy of the request context (or the app context).
        """
        state = self.state()
        settings = state.engine.settings
        wrap: Callable[[Callable[[], None]], Callable[[], None]]
        if has_request_context():
            wrap = _copy_request_context
        else:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            wrap = functools.partial(_with_app_context, app)
        custom = CustomStream(iterable, wrap=wrap)
        custom.start()
        reader = StreamReader(
            custom.log.read,
            0,
            prefix=encode(retry=settings.retry if retry is None else retry),
            keepalive=settings.keepalive if keepalive is None else keepalive,
            keepalive_bytes=encode_comment(keepalive_text),
            flush_interval=settings.flush_interval if flush_interval is None else flush_interval,
            on_close=custom.stop,
        )
        return self.sse_response(reader, headers=headers)


def _with_app_context(app: Flask, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            fn()

    return run


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigurationError(f"{key} must be one of {', '.join(allowed)}, not {value!r}.")
    return str(value)


def _provider_config(
    config: Mapping[str, Any], entry: Mapping[str, Any] | None = None
) -> ProviderConfig:
    """A provider's settings from config; a fallback ``entry`` overrides name, model, key, URL."""
    entry = entry or {}
    name = entry.get("provider", config[C.PROVIDER])
    same = name == config[C.PROVIDER]
    # A fallback's options are its own: the primary's (extra headers, ...) may not fit it.
    options = dict(entry.get("options", config[C.PROVIDER_OPTIONS] if same else {}))
    if name == "fake":
        options.setdefault("delay", config[C.FAKE_DELAY])
        if config[C.FAKE_RESPONSE]:
            options.setdefault("response", config[C.FAKE_RESPONSE])
    return ProviderConfig(
        name=name,
        model=entry.get("model", config[C.MODEL] if same else None),
        api_key=entry.get("api_key", config[C.API_KEY] if same else None),
        base_url=entry.get("base_url", config[C.BASE_URL] if same else None),
        connect_timeout=float(config[C.CONNECT_TIMEOUT]),
        read_timeout=float(config[C.READ_TIMEOUT]),
        total_timeout=float(config[C.TOTAL_TIMEOUT]),
        max_retries=int(config[C.MAX_RETRIES]),
        retry_max_wait=float(config[C.RETRY_MAX_WAIT]),
        pool_size=int(config[C.POOL_SIZE]),
        options=options,
    )


def render_error(error: AISSEError) -> Response:
    """The JSON error body of CONTRACT.md, with the error's status and headers."""
    if error.status >= 500:
        logger.warning("%s: %s", type(error).__name__, error.message)
    response = jsonify(error.to_dict())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response
