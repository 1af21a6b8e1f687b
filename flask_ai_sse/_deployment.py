"""Warnings about how the app is served, when that breaks streaming.

A WSGI app learns how it is served only from a request's environ, so the checks
run once per process, at the first request it serves, and log a warning for
each problem found:

* a ``memory`` store with several worker processes (``wsgi.multiprocess``):
  resume, fan-out and cancel then only work inside the worker running the stream;
* gunicorn without the gevent worker: the sync worker gives each stream a whole
  process and kills it at ``--timeout``; gthread gives each a thread, so at most
  ``--threads`` streams run per worker and the rest queue;
* a compression layer in the app: it holds events back to fill compressed blocks.

A middleware wrapped around the app outside Flask (in a WSGI file) is invisible
from here; ``docs/deployment.rst`` lists what to check by hand.

The warnings go to the ``flask_ai_sse`` logger. Where logging is not configured
(gunicorn configures only its own loggers) Python would print the library's
warnings bare, without a level; so at the first request, as Flask does for
``app.logger``, a handler like Flask's default one is added to it when no handler
would show a warning: they read ``[time] WARNING in flask_ai_sse: ...`` in the
server's error log.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import types
from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from flask.logging import has_level_handler, wsgi_errors_stream

__all__ = ["check_at_first_request", "problems"]

logger = logging.getLogger("flask_ai_sse")
#: Flask's default handler, naming the logger: for where logging is not configured.
_handler = logging.StreamHandler(wsgi_errors_stream)  # type: ignore[call-overload]
_handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s in %(name)s: %(message)s"))

_COMPRESSION = re.compile(r"gzip|compress|deflate|brotli|zstd", re.IGNORECASE)
#: Attributes through which WSGI middlewares reach the app they wrap.
_WRAPPED = ("app", "application", "wsgi_app", "wrapped", "_app")


def problems(app: Flask, environ: Mapping[str, Any], *, shared_store: bool) -> list[str]:
    """What, in the way ``app`` is served (``environ`` of one request), breaks streaming."""
    found: list[str] = []
    if environ.get("wsgi.multiprocess") and not shared_store:
        found.append(
            "AI_SSE_STORE is 'memory' but the server runs several worker processes: a"
            " client reconnecting to another worker cannot resume its stream, nor follow"
            " or cancel one running elsewhere. Use a redis:// store, or one worker."
        )
    if "gunicorn" in str(environ.get("SERVER_SOFTWARE", "")) and not _gevent_patched():
        if threading.current_thread() is threading.main_thread():
            found.append(
                "gunicorn serves this app with a sync worker: each event stream holds a"
                " whole worker process, and gunicorn kills it at --timeout. Run the"
                " gevent worker (gunicorn -k gevent)."
            )
        else:
            found.append(
                "gunicorn serves this app with threads: each event stream holds one, so at"
                " most --threads streams run per worker and later requests wait. Run the"
                " gevent worker (gunicorn -k gevent)."
            )
    found.extend(
        f"{name} compresses responses: the browser gets events in bursts, or at the end."
        " Exclude text/event-stream from it."
        for name in _compression_layers(app)
    )
    return found


def check_at_first_request(app: Flask, *, shared_store: bool) -> None:
    """Log :func:`problems` once per process, at the first request ``app`` serves."""
    pending = [True]

    def check_deployment() -> None:
        if not pending:  # every later request: one test, no exception raised and caught
            return
        try:
            pending.pop()  # atomic: of two concurrent first requests, one checks
        except IndexError:
            return
        if not has_level_handler(logger):
            logger.addHandler(_handler)
        for message in problems(app, request.environ, shared_store=shared_store):
            logger.warning(message)

    app.before_request(check_deployment)


def _gevent_patched() -> bool:
    """True under gunicorn's gevent worker, which patched the socket module before loading us."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched("socket"))


def _compression_layers(app: Flask) -> list[str]:
    """Names of the WSGI middlewares and after-request hooks that look like compression."""
    found: list[str] = []
    layer: Any = app.wsgi_app
    for _ in range(32):  # middleware chains are short; a cycle must not hang us
        if layer is None or getattr(layer, "__self__", None) is app:
            break
        name = _name(layer)
        if _COMPRESSION.search(name):
            found.append(name)
        layer = next((getattr(layer, a) for a in _WRAPPED if hasattr(layer, a)), None)
    for hook in app.after_request_funcs.get(None, []):
        name = _name(hook)
        # Flask-Compress leaves event streams alone unless they are in COMPRESS_MIMETYPES.
        if _COMPRESSION.search(name) and not (
            name.startswith("flask_compress")
            and "text/event-stream" not in app.config.get("COMPRESS_MIMETYPES", ())
        ):
            found.append(name)
    return found


def _name(obj: Any) -> str:
    target = obj if isinstance(obj, types.FunctionType | type) else None
    target = target or getattr(obj, "__func__", None) or type(obj)
    return f"{target.__module__}.{target.__qualname__}"
