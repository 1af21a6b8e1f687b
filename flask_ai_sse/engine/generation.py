"""The producer: one generation, run apart from any client connection.

A :class:`Generation` iterates its provider's :class:`ChunkStream` in its own
greenlet under gunicorn's gevent worker, or thread elsewhere (see :mod:`.spawn`;
the library never patches anything itself), and appends its events to the
stream log as protocol-neutral events (:mod:`.protocol`); each reader encodes them
for its own wire protocol. Clients only ever read the log, so a client that
leaves, returns or is joined by others changes nothing here.

Stopping: :meth:`Generation.abort` records why and calls the chunk stream's
``abort()``, which wakes the producer's blocked read from outside; the producer
then closes the upstream response itself and writes the terminal event.

Store faults: an append that fails keeps its entries in the store's queue (see
:meth:`StreamStore.unwritten`), and the producer keeps reading its provider. The
queue is written, in order and with the same ids, once the store answers again.
Only an outage longer than ``outage_budget`` seconds, or a queue longer than
``max_unwritten`` entries, ends the stream (``store_unavailable``). The end itself
is retried for as long again, so one terminal event lands whenever the store is
back in time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .._usage import Price, cost, settle
from ..chunks import AnswerBuilder, Chunk
from ..errors import AISSEError, StoreError, StreamTimeout
from ..providers.base import ChunkStream
from .flow import SentenceBuffer
from .protocol import END, entry_for_chunk, pack
from .spawn import spawn
from .store import StreamLost, StreamStore

logger = logging.getLogger("flask_ai_sse")


class Observer(Protocol):
    """Something beside the producer that follows a generation (e.g. persistence).

    Methods run in the producer's greenlet and must be quick; errors are logged,
    never propagated into the stream. ``started`` runs in the request that starts
    the generation. An observer with a false ``follows_chunks`` attribute is not
    called per chunk (the hot path stays one call per observer that needs it).
    """

    def started(self, generation: Generation) -> None: ...

    def chunk(self, generation: Generation, chunk: Chunk) -> None: ...

    def finished(self, generation: Generation) -> None: ...


class Generation:
    """One streamed answer, from the open upstream response to ``[DONE]``."""

    def __init__(
        self,
        *,
        stream_id: str,
        store: StreamStore,
        chunks: ChunkStream,
        start: dict[str, Any],
        meta: dict[str, Any] | None = None,
        observers: Sequence[Observer] = (),
        progress_every: int = 0,
        sentence_mode: bool = False,
        on_orphaned: Callable[[Generation], None] | None = None,
        on_done: Callable[[Generation], None] | None = None,
        prompt_estimate: int = 0,
        prices: Mapping[str, Price] | None = None,
        wrap: Callable[[Callable[[], None]], Callable[[], None]] | None = None,
        outage_budget: float = 10.0,
        max_unwritten: int = 10000,
    ) -> None:
        self.stream_id = stream_id
        self.outage_budget = outage_budget
        self.max_unwritten = max_unwritten
        #: Since when the store fails this producer's appends (``None``: it does not).
        self.store_down_since: float | None = None
        self.store = store
        self.chunks = chunks
        self.start_data = start
        self.meta = meta or {}
        self.observers = observers
        self._chunk_observers = [o for o in observers if getattr(o, "follows_chunks", True)]
        self.progress_every = progress_every
        self.sentences = SentenceBuffer() if sentence_mode else None
        self._on_orphaned = on_orphaned
        self._on_done = on_done
        self.answer = AnswerBuilder(model=chunks.model, provider=chunks.provider)
        #: ``streaming``, then ``completed``, ``failed`` or ``cancelled``.
        self.status = "streaming"
        self.error: AISSEError | None = None
        self.abort_reason: str | None = None
        self._abort_error: AISSEError | None = None
        #: Input tokens estimated from the request, for when the provider reports none.
        self.prompt_estimate = prompt_estimate
        self.prices = prices or {}
        #: Settled at the end (see ``flask_ai_sse._usage.settle``), then ``cost``.
        self.usage: dict[str, Any] | None = None
        self.cost: float | None = None
        self._wrap = wrap
        self.started_at = time.monotonic()
        self.last_activity = self.started_at
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.orphaned_at: float | None = None
        self.seq = 0
        self.done = threading.Event()

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Write the ``start`` event, then run the producer in its own thread/greenlet."""
        self.store.create(self.stream_id, self.meta)
        self.store.watch(self.stream_id, self._on_signal)
        try:
            self._notify("started")
            self.seq += 1
            # A failure here is the client's 503.
            self.store.append(self.stream_id, [pack("start", self.start_data)])
        except BaseException:
            self.store.unwatch(self.stream_id)  # no heartbeat for a stream that never ran
            raise
        run = self.run if self._wrap is None else self._wrap(self.run)
        spawn(run, name=f"ai-sse-{self.stream_id[:8]}")

    def abort(self, reason: str, error: AISSEError | None = None) -> None:
        """Stop soon, from any greenlet; ``reason``: cancelled, disconnected, timeout, budget.

        With ``error`` the stream ends with that ``event: error``; without, a
        ``timeout`` ends with :class:`StreamTimeout` and any other reason as cancelled.
        """
        if self.abort_reason is None and not self.done.is_set():
            self.abort_reason = reason
            self._abort_error = error
            self.chunks.abort()

    def _on_signal(self, name: str) -> None:
        if name == "cancelled":
            self.abort("cancelled")
        elif name == "orphaned":
            self.orphaned_at = time.monotonic()
            if self._on_orphaned is not None:
                self._on_orphaned(self)

    def run(self) -> None:
        try:
            self._pump()
        except AISSEError as exc:
            self.error = exc
        except Exception as exc:  # an adapter bug must still end the stream properly
            logger.exception("generation %s failed", self.stream_id)
            self.error = AISSEError()
            self.error.__cause__ = exc
        finally:
            try:
                self.chunks.close()
            except Exception:  # pragma: no cover - closing must never mask the end
                logger.exception("closing the upstream of %s failed", self.stream_id)
            self._finish()

    def _pump(self) -> None:
        answer = self.answer
        for chunk in self.chunks:
            if self.abort_reason is not None:
                return
            self.last_activity = time.monotonic()
            answer.add(chunk)
            if self._chunk_observers:  # observers see every chunk as the provider sent it
                self._notify_chunk(chunk)
            if self.sentences is not None and chunk.kind == "text":
                chunk = Chunk.delta(self.sentences.push(chunk.text))
                if not chunk.text:
                    continue
            entry = entry_for_chunk(chunk)
            if entry is None:
                continue
            if self.first_token_at is None:
                self.first_token_at = self.last_activity
            self.seq += 1
            entries = [entry]
            if self.progress_every and answer.chunks % self.progress_every == 0:
                self.seq += 1
                entries.append(pack("progress", self.progress()))
            self._append(entries)

    def _append(self, entries: list[bytes]) -> None:
        """Append, riding out a store outage within the budget (see the module docstring)."""
        try:
            self.store.append(self.stream_id, entries)
        except StreamLost:
            raise
        except StoreError:
            now = time.monotonic()
            if self.store_down_since is None:
                self.store_down_since = now
                logger.warning("stream %s: store failing, buffering its events", self.stream_id)
            if (
                now - self.store_down_since > self.outage_budget
                or self.store.unwritten(self.stream_id) > self.max_unwritten
            ):
                raise
        else:
            self.store_down_since = None

    def _append_final(self, entries: list[bytes]) -> None:
        """Write the end, retrying while the store fails, for up to the budget."""
        deadline = time.monotonic() + self.outage_budget
        while True:
            try:
                self.store.append(self.stream_id, entries, final=True)
                return
            except StreamLost:
                raise
            except StoreError:
                if time.monotonic() >= deadline:
                    raise
                entries = []  # the store kept them: only the retry is left
                time.sleep(0.2)

    def _finish(self) -> None:
        entries: list[bytes] = []
        rest = self.sentences.flush() if self.sentences is not None else ""
        if rest:  # whatever ends the stream, no text it produced is withheld
            self.seq += 1
            entries.append(pack("text", {"content": rest}))
        reason = self.abort_reason
        if self._abort_error is not None:
            self.error = self._abort_error
        elif reason == "timeout":
            self.error = StreamTimeout()
        elif reason is not None:
            self.error = None  # whatever the aborted read raised was our own doing
            self.status = "cancelled"
        self._settle_usage()
        if self.error is not None:
            self.status = "failed"
            data = {**self.error.to_dict(), "usage": self.usage}
            if self.cost is not None:
                data["cost"] = self.cost
            entries.append(pack("error", data))
        else:
            if self.status == "streaming":
                self.status = "completed"
            entries.append(pack("done", self.summary()))
        self.seq += 2  # the terminal event, then the end ([DONE] in every protocol, no id)
        self.ended_at = time.monotonic()
        # Observers (the stored message, concurrency slots) settle before any client sees
        # the end, so a client acting on [DONE] finds the final state.
        self._notify("finished")
        try:
            self._append_final([*entries, END])
        except AISSEError:  # the store failed: its readers get the error from it, not from us
            logger.warning("could not write the end of stream %s", self.stream_id)
        finally:
            self.store.unwatch(self.stream_id)
            self.done.set()
            if self._on_done is not None:
                self._on_done(self)

    # -- data -----------------------------------------------------------------

    def _settle_usage(self) -> None:
        """Usage for every ending: the provider's figures, else estimated; then the cost."""
        answer = self.answer
        chars = sum(map(len, answer.text_parts)) + sum(map(len, answer.reasoning_parts))
        chars += sum(len(call["arguments"]) for call in answer.tool_calls.values())
        self.usage = settle(answer.usage, prompt_estimate=self.prompt_estimate, output_chars=chars)
        self.cost = cost(self.usage, answer.model, self.prices)

    @property
    def ending(self) -> str:
        """How it ended, one bounded word for metrics and logs: ``streaming`` until then,
        ``completed``, ``failed``, ``cancelled``, ``disconnected``, ``timeout`` or ``budget``."""
        if self.status in ("streaming", "completed"):
            return self.status
        reason = self.abort_reason
        if reason in ("cancelled", "disconnected", "timeout", "budget"):
            return reason
        if self.status == "cancelled":
            return "cancelled"
        return "timeout" if self.error is not None and self.error.type == "timeout" else "failed"

    @property
    def finish_reason(self) -> str | None:
        if self.status == "cancelled":
            return "cancelled"
        if self.status == "failed":
            return "error"
        return self.answer.finish_reason or "stop"

    def summary(self) -> dict[str, Any]:
        """The ``done`` event's data."""
        answer = self.answer
        summary: dict[str, Any] = {
            "finish_reason": self.finish_reason,
            "raw_finish_reason": answer.raw_finish_reason,
            "usage": self.usage or (answer.usage.to_dict() if answer.usage else None),
            "model": answer.model,
            "provider": answer.provider,
            "stream_id": self.stream_id,
            **({"cost": self.cost} if self.cost is not None else {}),
        }
        # Upstream requests made: more than one when tools ran between them.
        summary["steps"] = max(answer.steps, 1)
        if answer.output is not None:
            summary["output"] = answer.output
        return summary

    def progress(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started_at
        chars = sum(len(t) for t in self.answer.text_parts)
        return {
            "chunks": self.answer.chunks,
            "characters": chars,
            "elapsed": round(elapsed, 3),
            "characters_per_second": round(chars / elapsed, 1) if elapsed > 0 else None,
        }

    def stats(self) -> dict[str, Any]:
        """Timing figures kept with a stored message."""
        end = self.ended_at or time.monotonic()
        return {
            "stream_chunks": self.answer.chunks,
            "stream_duration": round(end - self.started_at, 4),
            "time_to_first_token": (
                round(self.first_token_at - self.started_at, 4) if self.first_token_at else None
            ),
        }

    def _notify_chunk(self, chunk: Chunk) -> None:
        for observer in self._chunk_observers:
            try:
                observer.chunk(self, chunk)
            except Exception:
                logger.exception("observer %r failed on chunk", observer)

    def _notify(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(self, *args)
            except Exception:
                logger.exception("observer %r failed on %s", observer, event)
