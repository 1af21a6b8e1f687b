"""Starting the engine's background work: a greenlet under gevent, a thread otherwise.

The library never patches anything. When the server patched ``threading`` (gunicorn's
gevent worker does), a ``threading.Thread`` is already a greenlet, but starting one
also waits for it to begin running: a switch there and back for every stream.
``gevent.spawn`` only schedules it, which is what a producer needs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def _threading_is_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def spawn(target: Callable[[], None], name: str) -> None:
    """Run ``target`` in the background: a greenlet under gevent, else a daemon thread."""
    if _threading_is_patched():
        import gevent

        gevent.spawn(target)
    else:
        threading.Thread(target=target, name=name, daemon=True).start()
