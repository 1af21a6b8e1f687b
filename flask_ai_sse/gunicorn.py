"""gunicorn server hooks: a worker's shutdown waits for its generations, not only its
connections (docs/deployment.rst, "Shutdown").

gunicorn's gevent worker, told to stop (SIGTERM: a shutdown, a reload, a scale-down),
stops accepting and waits up to ``graceful_timeout`` for open *connections*; a
generation nobody reads is killed with the process. These hooks add the missing wait;
list them in ``gunicorn.conf.py``, importing this module inside them (so that the
master, which gevent never patches, does not import ``requests`` before the worker
patches ``ssl``)::

    def post_worker_init(worker):
        from flask_ai_sse.gunicorn import post_worker_init
        post_worker_init(worker)

    def worker_exit(server, worker):
        from flask_ai_sse.gunicorn import worker_exit
        worker_exit(server, worker)

::

    SIGTERM ─▶ the chained handler: gunicorn's own (stop accepting), then drain() in a
    │           greenlet: no new stream (503), generations run on up to the budget,
    │           the rest end with ``shutting_down``
    ├─ gunicorn waits for connections (readers end with their streams)
    └─ worker_exit: waits for drain() to return, keeping the worker's heartbeat
    SIGINT / SIGQUIT (quick shutdown): drain(0), or hurry() a drain under way: everything
    running ends now, clearly.

The budget is ``AI_SSE_SHUTDOWN_TIMEOUT`` capped at ``graceful_timeout`` less
:data:`MARGIN`, so the ends are written before the master's SIGKILL. Nothing of
gunicorn is replaced: the signal handler calls gunicorn's own first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from .engine.shutdown import ABORT_WAIT, DELIVERY_WAIT, drain, hurry
from .engine.spawn import spawn

__all__ = ["MARGIN", "post_worker_init", "worker_exit"]

#: Seconds of ``graceful_timeout`` kept after the drain's deadline: the ends written and
#: read, the worker's exit.
MARGIN = 2.0


class _Drainer:
    """This worker's drain: started once (by a signal or at exit), awaited at exit."""

    def __init__(self, worker: Any) -> None:
        self.limit = max(0.0, float(worker.cfg.graceful_timeout) - MARGIN)
        self.started = False
        self.finished = threading.Event()
        # gunicorn closes the worker's heartbeat file before worker_exit; a copy of its
        # descriptor lets the wait below keep the master from taking the worker for hung.
        self._heartbeat: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._heartbeat = os.dup(worker.tmp.fileno())

    def start(self, limit: float) -> None:
        if not self.started:
            self.started = True
            spawn(lambda: self._run(limit), name="ai-sse-drain")

    def _run(self, limit: float) -> None:
        try:
            drain(limit)
        finally:
            self.finished.set()

    def wait(self) -> None:
        """Until the drain returned (it is bounded; this bound only guards against a bug)."""
        self.start(self.limit)
        give_up = time.monotonic() + self.limit + ABORT_WAIT + DELIVERY_WAIT + MARGIN
        self._beat()
        while not self.finished.wait(0.5) and time.monotonic() < give_up:
            self._beat()
        if self._heartbeat is not None:
            with contextlib.suppress(OSError):
                os.close(self._heartbeat)
            self._heartbeat = None

    def _beat(self) -> None:
        """What gunicorn's ``WorkerTmp.notify`` does: the file's times set to now."""
        if self._heartbeat is not None:
            now = time.monotonic()
            with contextlib.suppress(OSError):
                os.utime(self._heartbeat, (now, now))

    def chain(self, signum: int, limit: Callable[[], float]) -> None:
        """Handle ``signum`` by starting the drain, then calling the handler it had."""
        previous = signal.getsignal(signum)

        def handler(sig: int, frame: FrameType | None) -> None:
            if limit() == 0:
                hurry()  # a quick stop after a graceful one: end what still runs, now
            self.start(limit())
            if callable(previous):
                previous(sig, frame)

        signal.signal(signum, handler)
        if signum == signal.SIGTERM:
            # As gunicorn had it (signal.signal turned it back on): don't let SIGTERM
            # interrupt the system calls of running requests.
            signal.siginterrupt(signum, False)


_drainer: _Drainer | None = None


def post_worker_init(worker: Any) -> None:
    """gunicorn's ``post_worker_init`` hook: on SIGTERM, drain; on SIGINT/SIGQUIT, end now."""
    global _drainer
    drainer = _drainer = _Drainer(worker)
    drainer.chain(signal.SIGTERM, lambda: drainer.limit)
    for quick in (signal.SIGINT, signal.SIGQUIT):
        drainer.chain(quick, lambda: 0.0)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``worker_exit`` hook: wait for the drain (started here if no signal
    did, e.g. after ``max_requests``), so that generations end before the process."""
    if _drainer is not None:
        _drainer.wait()
