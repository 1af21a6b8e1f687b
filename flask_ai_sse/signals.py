"""Flask signals (blinker) for what streams do, so an app can log, bill or audit.

The sender is the Flask app; connect with ``stream_ended.connect_via(app)`` or
``stream_ended.connect``. Receivers run in the greenlet that sends: ``stream_started``
in the request, ``stream_ended`` in the producer (no request context there; the
app context is not pushed either), so a receiver must be quick and must not raise
(errors are logged and swallowed).

``stream_started``
    A generation started (its upstream status was good). Keyword arguments:
    ``stream_id``, ``provider``, ``model``, ``conversation_id``, ``client_key``.

``stream_ended``
    It ended, however it ended. The same, plus ``ending`` (``completed``,
    ``failed``, ``cancelled``, ``disconnected``, ``timeout`` or ``budget``),
    ``finish_reason``, ``error_type``, ``answer`` (the text produced, whole or
    partial), ``usage`` (always a dict; ``estimated`` tells whether the provider
    gave the figures), ``cost`` (``None`` unless ``AI_SSE_PRICES`` prices the
    model), ``time_to_first_token`` and ``duration`` (seconds from the request).

``tool_called``
    The server ran a tool for a stream (sent by the tool runner): ``stream_id``,
    ``tool``, ``arguments``, ``result``, ``error_type``, ``duration``.

``client_key`` is the key rate limits and budgets count against (``owner:<id>``
or ``addr:<ip>``), ``None`` outside a request.
"""

from __future__ import annotations

from blinker import Namespace

__all__ = ["stream_ended", "stream_started", "tool_called"]

_signals = Namespace()

stream_started = _signals.signal("ai-sse-stream-started")
stream_ended = _signals.signal("ai-sse-stream-ended")
tool_called = _signals.signal("ai-sse-tool-called")
