"""The facade: ``AISSE`` registers on apps and offers the Python API.

One ``AISSE`` object may serve several apps; everything per app lives in
``app.extensions["ai_sse"]`` (an :class:`AppState`). Settings are read in
:mod:`._settings`, responses built in :mod:`._responses`, routes live in
:mod:`._blueprint`. Data flows one way:
request -> validation -> provider -> engine -> reader -> response.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, has_request_context
from werkzeug.exceptions import Unauthorized

from . import constants as C
from ._blueprint import create_blueprint
from ._cli import cli_group
from ._deployment import check_at_first_request
from ._guards import Guards
from ._observability import Telemetry
from ._request import client_key, once_per_request, requested_event_id
from ._responses import custom_stream_response, render_error, sse_response
from ._settings import Settings, read_settings, read_table_prefix
from ._toolrun import complete_steps, open_steps, uses_steps
from ._tools import ToolRegistry
from ._turn import MESSAGE_META_OPTION, Conversations, Turn
from ._validation import validate
from .chunks import Answer, ChatRequest, Chunk, Message
from .engine import Engine, Generation, Observer, create_store
from .engine.opening import open_within
from .errors import AISSEError, ValidationError
from .protocols import PROTOCOLS
from .providers import Provider, build_provider
from .providers.base import AbortSignal, ChunkStream
from .task import Task

if TYPE_CHECKING:
    from .persistence import ConversationStore, Persistence


@dataclass
class AppState:
    """What one app's registration holds: its settings, provider, engine and guards."""

    extension: AISSE
    settings: Settings
    provider: Provider
    engine: Engine
    guards: Guards
    #: The stored conversations' hook (``AISSE(app, db=db)``), else ``None``.
    conversations: Conversations | None = None
    #: Metrics, spans, signals, the stream log line and token budgets (docs/observability).
    telemetry: Telemetry = field(default_factory=Telemetry)


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
        self._provider_instance = provider if isinstance(provider, Provider) else None
        self._authorize: Callable[[], str | None] | None = None
        #: Tools registered with :meth:`tool`, shared by every app this object serves.
        self.tools = ToolRegistry()
        #: With ``db``: the persistence models, classes on the app's own ``db.Model``.
        self.Conversation: Any = None
        self.Message: Any = None
        self._persistence: Persistence | None = None
        if db is not None:
            # An optional feature, loaded only with a database. The models are made
            # now, so that ``db.create_all()`` and Alembic see them before init_app.
            from .persistence import Persistence

            prefix = read_table_prefix(app.config if app is not None else None, table_prefix)
            self._persistence = Persistence(db, prefix)
            self.Conversation = self._persistence.models.conversation
            self.Message = self._persistence.models.message
        if app is not None:
            self.init_app(app)

    # -- registration -----------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: read its config once, build provider, store and engine."""
        if C.EXTENSION_NAME in app.extensions:
            raise RuntimeError(
                "A 'AISSE' instance has already been registered on this Flask app."
                " Import and use that instance instead."
            )
        settings = read_settings(app.config, self._overrides)
        provider = self._provider_instance or build_provider(
            settings.provider, list(settings.fallbacks)
        )
        store = settings.store
        engine = Engine(
            create_store(
                store.url,
                ttl=store.ttl,
                max_events=store.max_events,
                redis_options=store.redis,
                outage_budget=store.outage_budget,
            ),
            settings.engine,
        )
        guards = Guards.setup(
            app,
            settings.guards,
            settings.cors,
            client_key=self._client_key,
            limiter=self.limiter,
        )
        conversations = None
        if self._persistence is not None:
            conversations = self._persistence.init_app(
                app, settings.persistence, owner=self.current_owner
            )
            # Whichever worker ends a stream whose producer died marks its message too.
            engine.store.on_interrupted.append(conversations.mark_interrupted)
        state = AppState(self, settings, provider, engine, guards, conversations)
        app.extensions[C.EXTENSION_NAME] = state
        state.telemetry = Telemetry.setup(app, state)
        app.register_error_handler(AISSEError, render_error)
        check_at_first_request(app, shared_store=engine.store.shared)
        cli_group(app)  # flask ai-sse ask / check (persistence added reconcile)
        if settings.register_blueprint:
            app.register_blueprint(self.create_blueprint(), url_prefix=settings.url_prefix)

    def create_blueprint(self, *, decorators: Sequence[Callable[..., Any]] = ()) -> Blueprint:
        """The routes as a blueprint, for an app that registers them itself.

        With ``AI_SSE_REGISTER_BLUEPRINT = False``::

            app.register_blueprint(ai.create_blueprint(decorators=[login_required]),
                                   url_prefix="/ai")

        ``decorators`` wrap every view, outermost first, before the rate limit and
        the concurrency cap: a request they refuse costs nothing.
        """
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

    @property
    def provider(self) -> Provider:
        """The current app's provider: its ``name`` and ``model`` say who answers."""
        return self.state().provider

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

        The hook runs once per request (it may be a database lookup). With
        ``AI_SSE_REQUIRE_OWNER`` an anonymous request (``None``, or no hook) is a 401.
        """
        if not has_request_context():
            return None
        hook = self._authorize
        owner = None if hook is None else once_per_request("flask_ai_sse.owner", hook)
        if owner is not None:
            return str(owner)
        if self.state().settings.guards.require_owner:
            raise Unauthorized("Sign in first: anonymous requests are refused here.")
        return None

    def _client_key(self) -> str:
        return client_key(self.current_owner())

    # -- the Python API ---------------------------------------------------------

    def tool(self, fn: Any = None, **kwargs: Any) -> Any:
        """Register a function as a tool: ``@ai.tool`` or ``@ai.tool(name=, description=,
        schema=)``. Its JSON Schema comes from its type hints and docstring unless given."""
        return self.tools.decorator(fn, **kwargs)

    def _open(
        self,
        state: AppState,
        request: ChatRequest,
        abort: AbortSignal | None = None,
        *,
        whole: bool = False,
    ) -> ChunkStream:
        """The upstream answer; with tools or a schema, wrapped in the step loop.

        ``whole``: each step is a non-streamed request (``ask()``). ``abort`` stops
        the first step's open from another greenlet (see ``engine.opening``).
        """
        return open_steps(self, state, request, whole=whole, abort=abort)

    @staticmethod
    def _validate(
        state: AppState,
        *,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        max_steps: int | None = None,
        schema: dict[str, Any] | None = None,
        **fields: Any,
    ) -> ChatRequest:
        """The app's code asks: its limits apply, the model defaults to the provider's, and
        the tool arguments are kept on the request (resolved when it opens)."""
        request = validate(
            limits=state.settings.limits, default_model=state.provider.model, **fields
        )
        if tools is not None:
            request.requested_tools = list(tools)
        request.tool_choice = tool_choice
        request.max_steps = max_steps
        request.schema = schema
        return request

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
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        max_steps: int | None = None,
        schema: dict[str, Any] | None = None,
        protocol: str | None = None,
        **options: Any,
    ) -> Response:
        """Stream an answer as an SSE response (the wire format: docs/wire.rst).

        ``protocol``: ``default``, ``vercel`` or ``openai`` (default: ``AI_SSE_PROTOCOL``;
        see docs/frontends.rst).

        A request carrying a ``Last-Event-ID`` of a live stream (a browser
        ``EventSource`` reconnecting) resumes that stream instead of starting a
        second generation. A provider failure before the first byte raises a
        :class:`~flask_ai_sse.errors.ProviderError`, which the registered
        error handler renders as a 502/504/429 JSON response.
        """
        state = self.state()
        conversation_id = None
        if conversation is not None:
            conversation_id = str(getattr(conversation, "id", conversation))
        request = self._validate(
            state,
            prompt=prompt,
            messages=messages,
            system=system,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            conversation_id=conversation_id,
            options=options,
            tools=tools,
            tool_choice=tool_choice,
            max_steps=max_steps,
            schema=schema,
        )
        return self.serve(request, state=state, protocol=protocol)

    def serve(
        self,
        request: ChatRequest,
        *,
        observers: Sequence[Observer] = (),
        state: AppState | None = None,
        protocol: str | None = None,
        protocol_options: Mapping[str, Any] | None = None,
    ) -> Response:
        """Resume the stream the request's ``Last-Event-ID`` names, or start a new one.

        ``observers`` follow the generation (e.g. a concurrency slot to free at its end).
        ``protocol`` is the wire format (``protocol_options`` go to its encoder).
        """
        state = state or self.state()
        protocol = protocol or state.settings.protocol
        if has_request_context():
            resumed = requested_event_id()
            if resumed is not None:
                # A reconnect to a stream that is gone is a 404: no second generation.
                return self.attach(*resumed, protocol=protocol, protocol_options=protocol_options)
        owner = self.current_owner()
        generation = self.start_generation(request, owner=owner, observers=observers, state=state)
        return self.follow_response(generation, protocol, protocol_options, state=state)

    def follow_response(
        self,
        generation: Generation,
        protocol: str,
        options: Mapping[str, Any] | None = None,
        *,
        state: AppState | None = None,
    ) -> Response:
        """The response that follows a generation just started, in ``protocol``."""
        state = state or self.state()
        options = {"created": generation.meta.get("created", 0), **(options or {})}
        reader = state.engine.follow(generation.stream_id, protocol=protocol, options=options)
        return sse_response(
            reader, headers=PROTOCOLS[protocol].headers, send_watch=state.guards.send_watch
        )

    def start_generation(
        self,
        request: ChatRequest,
        *,
        owner: str | None = None,
        observers: Sequence[Observer] = (),
        state: AppState | None = None,
    ) -> Generation:
        """Open the upstream request and start producing.

        The provider's status is awaited up to ``AI_SSE_KEEPALIVE`` seconds: a failure
        by then raises (an HTTP error); a slower head is awaited by the producer
        while the response starts (see :mod:`flask_ai_sse.engine.opening`).
        With ``request.conversation_id`` (and persistence on), the turn is stored
        first and the conversation's history goes upstream as context.
        """
        state = state or self.state()
        state.engine.check_store()  # a store that is down must not cost an upstream request
        # A worker that shuts down takes no new stream (503 shutting_down); the telemetry
        # span is current while the upstream call opens (carried into the opener).
        with (
            state.engine.admission.admit(),
            self._turn(state, request, owner) as turn,
            state.telemetry.opening(turn.request, state.provider) as watch,
        ):
            chunks = open_within(
                functools.partial(self._open, state, turn.request),
                state.settings.engine.keepalive,
                provider=state.provider.name,
                model=turn.request.model,
            )
            return state.engine.start(
                chunks,
                stream_id=turn.stream_id,
                start=turn.start,
                meta={"owner": owner},
                observers=[*observers, *turn.observers, *watch.observers],
                prompt_estimate=watch.prompt_estimate,
                wrap=watch.wrap,
            )

    @contextlib.contextmanager
    def _turn(self, state: AppState, request: ChatRequest, owner: str | None) -> Iterator[Turn]:
        """The turn of ``request``: stored by the conversations hook when it names one.

        A failure inside the block (the upstream refused, before any byte) is
        reported to the turn, which marks a stored answer ``failed``.
        """
        meta = request.options.pop(MESSAGE_META_OPTION, None) or {}
        if request.conversation_id is None:
            yield Turn(request)
            return
        if state.conversations is None:
            raise ValidationError(
                "This server does not store conversations.",
                type="conversations_disabled",
                field="conversation_id",
            )
        turn = state.conversations.begin_turn(
            request, owner=owner, provider=state.provider.name, meta=meta
        )
        try:
            yield turn
        except BaseException as exc:
            turn.failed(exc)
            raise

    def attach(
        self,
        stream_id: str,
        after: int = 0,
        *,
        protocol: str | None = None,
        protocol_options: Mapping[str, Any] | None = None,
    ) -> Response:
        """Follow a running or recently finished stream, replaying events after ``after``,
        in ``protocol`` (default: ``AI_SSE_PROTOCOL``).

        Only the stream's owner (see :meth:`authorize`) may; others get a 404.
        """
        state = self.state()
        # The hook runs before the lookup, so that its 401 cannot tell which ids exist.
        owner = self.current_owner()
        protocol = protocol or state.settings.protocol
        reader = state.engine.reader(
            stream_id, after, owner=owner, protocol=protocol, options=dict(protocol_options or {})
        )
        return sse_response(
            reader, headers=PROTOCOLS[protocol].headers, send_watch=state.guards.send_watch
        )

    def cancel(self, stream_id: str) -> bool:
        """Stop a generation and its upstream request; False when unknown or not yours."""
        owner = self.current_owner()  # before the lookup, as in attach()
        return self.state().engine.cancel(stream_id, owner=owner)

    def stream(
        self,
        prompt: str | None = None,
        *,
        messages: list[Message] | None = None,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        max_steps: int | None = None,
        schema: dict[str, Any] | None = None,
        **options: Any,
    ) -> ChunkIterator:
        """Normalized chunks for a custom view; closing the iterator closes the upstream.

        (Not to be confused with ``ai.task()...stream()``, which returns a Response.)
        """
        state = self.state()
        request = self._validate(
            state,
            prompt=prompt,
            messages=messages,
            system=system,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            options=options,
            tools=tools,
            tool_choice=tool_choice,
            max_steps=max_steps,
            schema=schema,
        )
        return ChunkIterator(self._open(state, request))

    def ask(
        self,
        prompt: str | None = None,
        *,
        messages: list[Message] | None = None,
        system: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        max_steps: int | None = None,
        schema: dict[str, Any] | None = None,
        **options: Any,
    ) -> Answer:
        """The whole answer, without streaming (with ``schema=``, parsed as ``Answer.data``)."""
        state = self.state()
        request = self._validate(
            state,
            prompt=prompt,
            messages=messages,
            system=system,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            options=options,
            tools=tools,
            tool_choice=tool_choice,
            max_steps=max_steps,
            schema=schema,
        )
        return self.complete(request, state=state)

    def complete(self, request: ChatRequest, *, state: AppState | None = None) -> Answer:
        """The whole answer to an already validated request (stored with a conversation)."""
        state = state or self.state()
        with self._turn(state, request, self.current_owner()) as turn:
            if uses_steps(turn.request):
                answer = complete_steps(self._open(state, turn.request, whole=True))
            else:
                answer = state.provider.complete(turn.request)
            turn.answered(answer)
            state.telemetry.answered(answer, turn.request)  # tokens, cost, budget
            return answer

    @property
    def conversations(self) -> ConversationStore:
        """The current app's conversations and messages (persistence: ``AISSE(app, db=db)``)."""
        conversations = self.state().conversations
        if conversations is None:
            raise RuntimeError("Conversations need persistence: create AISSE(app, db=db).")
        return conversations  # type: ignore[return-value]

    def task(self) -> Task:
        """A fluent builder: ``ai.task().system(...).prompt(...).stream()``."""
        return Task(self)

    # -- responses --------------------------------------------------------------

    def sse_response(
        self, body: Iterable[bytes], *, headers: Mapping[str, str] | None = None
    ) -> Response:
        """Wrap an iterable of encoded bytes in a response with the event-stream headers."""
        return sse_response(body, headers=headers)

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
        return custom_stream_response(
            iterable,
            state.settings.engine,
            headers=headers,
            retry=retry,
            keepalive=keepalive,
            keepalive_text=keepalive_text,
            flush_interval=flush_interval,
            send_watch=state.guards.send_watch,
        )
