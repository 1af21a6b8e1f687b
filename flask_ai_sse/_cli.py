"""``flask ai-sse``: ask the configured provider from a terminal, or check that it answers.

The group exists on every app the extension is registered on; persistence adds
``reconcile`` to it (:mod:`flask_ai_sse.persistence.cli`). ``ask`` runs the same
path as ``POST /ai/stream`` (provider, engine, stream log), so what it prints is
what a browser would get, and Ctrl-C cancels the generation as the cancel route
does: the upstream request is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from . import constants as C
from ._settings import read_provider
from .chunks import ChatRequest, Message
from .errors import AISSEError
from .providers import create_provider
from .sse import ServerSentEvent, iter_events

if TYPE_CHECKING:
    from .extension import AppState
    from .providers import Provider

__all__ = ["ask_command", "check_command", "cli_group"]

GROUP_NAME = "ai-sse"
#: Exit status after Ctrl-C, as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED = 130


def cli_group(app: Flask) -> click.Group:
    """The app's ``flask ai-sse`` group, made on first use (one per app, so a
    command that only applies to one app, such as ``reconcile``, stays there)."""
    group = app.cli.commands.get(GROUP_NAME)
    if not isinstance(group, click.Group):
        group = AppGroup(GROUP_NAME, help="flask-ai-sse commands.")
        group.add_command(ask_command)
        group.add_command(check_command)
        app.cli.add_command(group)
    return group


def _state() -> AppState:
    state = current_app.extensions.get(C.EXTENSION_NAME)
    if state is None:  # pragma: no cover - the group only exists where init_app ran
        raise click.UsageError("flask-ai-sse is not registered on this app.")
    return state  # type: ignore[no-any-return]


def _provider(state: AppState, name: str | None) -> tuple[Provider, bool]:
    """The configured provider, or a new one for ``--provider`` (True: close it after)."""
    if name is None or name == state.settings.provider.name:
        return state.provider, False
    try:
        return create_provider(read_provider(current_app.config, name)), True
    except AISSEError as exc:
        raise click.ClickException(exc.message) from None


def _describe(provider: Provider, model: str) -> str:
    """``openai gpt-4o-mini at https://...``: what was asked, never the key."""
    base_url = getattr(provider, "base_url", None)
    return f"{provider.name} {model}" + (f" at {base_url}" if base_url else "")


def _key_source(provider: Provider) -> str:
    """Where the key came from (a name, never the value)."""
    env = getattr(provider, "key_env", ())
    if not env:
        return "no key needed"
    if provider.config.api_key:
        return "key from AI_SSE_API_KEY"
    found = next((var for var in env if os.environ.get(var)), None)
    return f"key from {found}" if found else "no key"


@dataclass
class Figures:
    """What the last line reports, measured from the moment the request went out."""

    started: float
    first_token: float | None = None
    ended: float | None = None
    pieces: int = 0
    usage: dict[str, Any] | None = None

    def line(self) -> str:
        end = self.ended or time.monotonic()
        if self.first_token is None:
            ttft = "no tokens"
            rate = ""
        else:
            ttft = f"time to first token {self.first_token - self.started:.3f} s"
            out = (self.usage or {}).get("completion_tokens") or self.pieces
            span = end - self.first_token
            rate = f", {out / span:.1f} tokens/s" if span > 0 else ""
        usage = self.usage or {}
        used = (
            f"usage: {usage.get('prompt_tokens', 0)} in, {usage.get('completion_tokens', 0)} out,"
            f" {usage.get('total_tokens', 0)} total"
            if usage
            else "usage: not reported"
        )
        return f"{ttft}{rate}; {used}"


def _events(
    state: AppState, provider: Provider, request: ChatRequest
) -> Generator[Any, None, None]:
    """Open upstream, start a generation, and yield its events as they land in the log.

    On any exit (the end, an error, Ctrl-C) the generation is stopped and its
    upstream request closed before this returns.
    """
    chunks = provider.open(request)
    engine = state.engine
    generation = engine.start(chunks)
    reader = engine.follow(generation.stream_id)
    try:
        yield from iter_events(reader)
    finally:
        generation.abort("cancelled")  # a no-op once it has ended
        reader.close()
        generation.done.wait(10)


@click.command("ask")
@with_appcontext
@click.argument("prompt")
@click.option("--system", help="A system prompt.")
@click.option("--model", help="The model (default: AI_SSE_MODEL or the provider's).")
@click.option("--provider", "provider_name", help="Another provider than AI_SSE_PROVIDER.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Cap the answer's length.")
@click.option("--temperature", type=float, help="Sampling temperature.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the raw events, one JSON object a line."
)
def ask_command(
    prompt: str,
    system: str | None,
    model: str | None,
    provider_name: str | None,
    max_tokens: int | None,
    temperature: float | None,
    as_json: bool,
) -> None:
    """Stream an answer to PROMPT as it arrives, then a line of figures.

    The figures (time to first token, tokens per second, usage) go to stderr,
    so stdout holds the answer alone. Ctrl-C cancels the stream upstream.
    """
    state = _state()
    provider, owned = _provider(state, provider_name)
    messages: list[Message] = [{"role": "user", "content": prompt}]
    request = ChatRequest(
        messages=messages,
        model=model or provider.model,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    figures = Figures(started=time.monotonic())
    failure: str | None = None
    try:
        with contextlib.closing(_events(state, provider, request)) as events:
            for event in events:
                failure = _show(event, figures, as_json) or failure
    except KeyboardInterrupt:
        click.echo("", err=not as_json)
        click.echo("Cancelled: the stream and its upstream request were closed.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except AISSEError as exc:
        raise click.ClickException(f"{_describe(provider, request.model)}: {exc.message}") from None
    finally:
        if owned:
            provider.close()
    figures.ended = figures.ended or time.monotonic()
    if not as_json:
        click.echo()
    click.echo(figures.line(), err=True)
    if failure is not None:
        raise click.ClickException(f"{_describe(provider, request.model)}: {failure}")


def _show(event: Any, figures: Figures, as_json: bool) -> str | None:
    """Print one event; return the error message when it is an ``error`` event."""
    if not isinstance(event, ServerSentEvent):
        return None
    data: Any = event.data
    if data != "[DONE]":
        data = json.loads(data)
    if as_json:
        click.echo(json.dumps({"event": event.event, "id": event.id, "data": data}))
    if event.event == "message" and isinstance(data, dict):
        if figures.first_token is None:
            figures.first_token = time.monotonic()
        figures.pieces += 1
        if not as_json:
            click.echo(data.get("content", ""), nl=False)
            sys.stdout.flush()
    elif event.event == "done":
        figures.ended = time.monotonic()
        figures.usage = data.get("usage") or None
    elif event.event == "error":
        figures.ended = time.monotonic()
        return str(data.get("error", {}).get("message", "The stream failed."))
    return None


@click.command("check")
@with_appcontext
@click.option("--provider", "provider_name", help="Another provider than AI_SSE_PROVIDER.")
@click.option("--model", help="The model (default: AI_SSE_MODEL or the provider's).")
def check_command(provider_name: str | None, model: str | None) -> None:
    """Say in one line whether the configured provider answers (key, base URL, model).

    Asks for one token of a one-word prompt; exits 1 when the provider fails.
    """
    state = _state()
    provider, owned = _provider(state, provider_name)
    model = model or provider.model
    where = f"{_describe(provider, model)} ({_key_source(provider)})"
    started = time.monotonic()
    request = ChatRequest(messages=[{"role": "user", "content": "ping"}], model=model, max_tokens=1)
    try:
        provider.complete(request)
    except AISSEError as exc:
        raise click.ClickException(f"{where}: {exc.message}") from None
    finally:
        if owned:
            provider.close()
    click.echo(f"ok: {where} answered in {time.monotonic() - started:.2f} s")
