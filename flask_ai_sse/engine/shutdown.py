"""Draining: a worker that shuts down lets its generations finish, and ends the rest clearly.

A server waits for open connections, not for generations: one that nobody reads
(``AI_SSE_DISCONNECT_POLICY = "finish"``, or inside its disconnect grace) would die with
the process and leave its stored answer ``streaming``. :func:`drain`, called when the
worker is told to stop (``flask_ai_sse.gunicorn`` calls it on SIGTERM):

::

    drain(limit)
      ├─ every engine of this process refuses new streams: 503 ``shutting_down``
      ├─ waits for its generations (and the starts already past the check) ...
      ├─ ... up to AI_SSE_SHUTDOWN_TIMEOUT (at most ``limit``) after the signal
      │     └─ still running: Generation.abort("shutting_down") ─▶ the stored answer is
      │          ``failed`` (reason ``shutting_down``); every reader, on any worker of a
      │          shared store, reads ``event: error`` ``shutting_down`` + ``[DONE]``
      ├─ returns once none is left (at most ABORT_WAIT after the deadline) ...
      └─ ... and their readers have sent the end (at most DELIVERY_WAIT more)

Engines register themselves here when they are made (a weak set: an app that goes
away leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..errors import ShuttingDown, StoreError

if TYPE_CHECKING:
    from . import Engine

logger = logging.getLogger("flask_ai_sse")

#: How long aborted generations get to write their end before :func:`drain` gives up.
ABORT_WAIT = 1.0
#: How long the readers of the streams that ended get to send their last events.
DELIVERY_WAIT = 1.0
#: How often :func:`drain` looks at the generations still running.
TICK = 0.05

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
#: Set by :func:`hurry`: every drain under way ends its generations now.
_hurried = threading.Event()


class Admission:
    """Whether an engine takes new streams, and how many are being started now."""

    def __init__(self) -> None:
        self.draining = False
        self.starting = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Around opening the upstream request and starting the generation: refused
        (:class:`ShuttingDown`) once draining, counted until the generation runs."""
        with self._lock:
            if self.draining:
                raise ShuttingDown("The server is shutting down; try again.")
            self.starting += 1
        try:
            yield
        finally:
            with self._lock:
                self.starting -= 1


def track(engine: Engine) -> None:
    """Count ``engine`` among this process's engines (done by the engine itself)."""
    _engines.add(engine)


def drain(limit: float, engines: Iterable[Engine] | None = None) -> bool:
    """Drain every engine of this process (or ``engines``); True when no generation
    had to be ended.

    Each engine waits its own ``AI_SSE_SHUTDOWN_TIMEOUT`` seconds, at most ``limit``
    (the server's own bound, less a margin); ``None`` as its setting means ``limit``.
    Blocks the calling greenlet or thread. A drained engine takes no new stream again.
    """
    began = time.monotonic()
    plans: list[tuple[Engine, float]] = []
    for engine in list(_engines if engines is None else engines):
        engine.admission.draining = True
        own = engine.settings.shutdown_timeout
        budget = limit if own is None else min(own, limit)
        plans.append((engine, began + max(0.0, budget)))
    if not plans:
        return True
    give_up = max(deadline for _, deadline in plans) + ABORT_WAIT
    ended = 0
    seen: dict[str, Engine] = {}
    while True:
        now = time.monotonic()
        busy = False
        for engine, deadline in plans:
            if not engine.active and not engine.admission.starting:
                continue
            busy = True
            seen.update(dict.fromkeys(engine.active, engine))
            if now >= deadline or _hurried.is_set():
                for generation in list(engine.active.values()):
                    if generation.abort_reason is None and not generation.done.is_set():
                        ended += 1
                        generation.abort("shutting_down", ShuttingDown())
        if not busy:
            break
        if now >= give_up:
            logger.warning("shutdown: generations still running after the drain's bound")
            return False
        time.sleep(TICK)
    if ended:
        logger.warning("shutdown: %d generation(s) could not finish in time", ended)
    _wait_for_readers(seen)
    return ended == 0


def hurry() -> None:
    """Make the drains under way end their generations now (a quick stop after a
    graceful one); a signal handler may call it."""
    _hurried.set()


def _wait_for_readers(streams: dict[str, Engine]) -> None:
    """Let the readers of the ended streams send their last events (at most
    DELIVERY_WAIT): a process that exits at once would cut them before ``[DONE]``."""
    give_up = time.monotonic() + DELIVERY_WAIT
    pending = list(streams.items())
    while pending and time.monotonic() < give_up:
        pending = [(stream_id, e) for stream_id, e in pending if _read(e, stream_id)]
        if pending:
            time.sleep(TICK)


def _read(engine: Engine, stream_id: str) -> bool:
    try:
        return engine.store.listeners(stream_id) > 0
    except StoreError:  # the store is down: nobody can read anything more
        return False
