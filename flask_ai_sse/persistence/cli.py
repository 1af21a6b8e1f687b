"""``flask ai-sse reconcile``: mark messages left ``streaming`` by a dead worker as failed."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .. import constants as C
from .._cli import cli_group


@click.command("reconcile")
@with_appcontext
@click.option(
    "--older-than",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds since a streaming message's last write (default: AI_SSE_STREAM_TIMEOUT)."
    " 0 marks every streaming message: only when no server is running.",
)
def reconcile_command(older_than: float | None) -> None:
    """Mark interrupted streaming messages as failed (reason 'interrupted')."""
    state = current_app.extensions.get(C.EXTENSION_NAME)
    store = getattr(state, "conversations", None)
    if store is None:
        raise click.UsageError("Persistence is off: create the extension with AISSE(app, db=db).")
    streams = state.engine.store  # type: ignore[union-attr]
    alive = streams.producer_alive if streams.shared else None  # shared heartbeats, if any
    count = store.reconcile(older_than=older_than, alive=alive)
    click.echo(f"Marked {count} interrupted message(s) as failed.")


def register_cli(app: Flask) -> None:
    """Add ``reconcile`` to the app's ``flask ai-sse`` group (only apps with persistence)."""
    cli_group(app).add_command(reconcile_command)
