"""Flask signals (blinker) for what streams do, so an app can log, bill or audit.

The sender is the Flask app; connect with ``stream_ended.connect_via(app)`` or
``stream_ended.connect``. Receivers run in the greenlet that sends: ``stream_started``
in the request, ``stream_ended`` in the producer (no request context there; the
app context is not pushed either), so a receiver must be quick and must not raise
(errors are logged and swallowed).

``stream_started(app, stream_id, provider, model, conversation_id, client_key)``
    A generation started (its upstream status was good).

``stream_ended(app, stream_id, provider, model, conversation_id, client_key, ending,
finish_reason, error_type, answer, usage, cost, time_to_first_token, duration)``
    It ended, however it ended: ``ending`` is ``completed``, ``failed``,
    ``cancelled``, ``disconnected``, ``timeout`` or ``budget``; ``usage`` is always
    a dict (``estimated`` tells whether the provider gave the figures); ``cost``
    is ``None`` unless ``AI_SSE_PRICES`` prices the model; ``answer`` is the text
    produced, whole or partial.

``tool_called(app, stream_id, tool, arguments, result, error_type, duration)``
    The server ran a tool for a stream (sent by the tool runner).

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
