"""The engine's parts in-process: store, reader, sentence mode, flush, watchdog.

Waits such as ``gen.done.wait(5)`` only stop a hang: what they wait for takes
milliseconds, so their bounds hold with a wide margin on a loaded machine.
"""

from __future__ import annotations

import threading

import pytest

from flask_ai_sse import AISSE
from flask_ai_sse.chunks import ChatRequest
from flask_ai_sse.engine import Engine, EngineSettings, MemoryStore
from flask_ai_sse.engine.flow import SentenceBuffer
from flask_ai_sse.engine.reader import StreamReader
from flask_ai_sse.engine.store import StreamLog
from flask_ai_sse.testing import FakeProvider, FakeReply, collect

ASK = ChatRequest(messages=[{"role": "user", "content": "x"}], model="m")


@pytest.mark.parametrize(
    ("pieces", "out"),
    [
        (
            ["Hello", " world. How", " are you?", " Fine"],
            ["", "Hello world. ", "How are you? ", "Fine"],
        ),
        (["Line one\nLine", " two"], ["Line one\n", "Line two"]),
        (['He said "stop." Then', " left."], ['He said "stop." ', "Then left."]),
        (["v1.2 is out"], ["v1.2 is out"]),
    ],
)
def test_sentence_buffer(pieces, out):
    buf = SentenceBuffer()
    got = [buf.push(p) for p in pieces]
    got.append(buf.flush())
    assert [g for g in got if g] == [o for o in out if o]
    assert "".join(got) == "".join(pieces)


def test_sentence_mode_sends_whole_sentences_and_the_rest_at_the_end(make_app):
    provider = FakeProvider(script=["One two. Three four! Five"], delay=0)
    app = make_app(AISSE(provider=provider), AI_SSE_SENTENCE_MODE=True)
    result = collect(app.test_client().get("/ai/stream?prompt=x"))
    contents = [
        e.json()["content"] for e in result.events if e.event == "message" and e.data != "[DONE]"
    ]
    assert contents == ["One two. ", "Three four! ", "Five"]


def test_sentence_mode_flushes_partial_text_before_an_error(make_app):
    provider = FakeProvider(script=[FakeReply(text="Half a sentence", fail_after=2)], delay=0)
    app = make_app(AISSE(provider=provider), AI_SSE_SENTENCE_MODE=True)
    result = collect(app.test_client().get("/ai/stream?prompt=x"))
    assert result.text == "Half a "
    assert result.terminal.event == "error"


def test_flush_interval_coalesces_events_arriving_in_the_window():
    log = StreamLog()
    log.append([b"a"])
    calls = []

    def read(after, timeout):
        result = log.read(after, timeout)
        if not calls:  # more arrive while the reader waits out the window
            log.append([b"b", b"c"])
        calls.append(after)
        return result

    reader = StreamReader(read, 0, flush_interval=0.01)
    assert next(reader) == b"abc"
    log.append([b"d"], final=True)
    assert next(reader) == b"d"
    with pytest.raises(StopIteration):
        next(reader)


def test_reader_that_falls_behind_the_cap_gets_an_error_event_not_a_crash():
    store = MemoryStore(max_events=3)
    store.create("s", {})
    store.append("s", [b"1", b"2", b"3", b"4", b"5"])
    reader = StreamReader(lambda after, t: store.read("s", after, t), 0, keepalive=0.01)
    body = b"".join(reader)
    assert body.startswith(b"event: error\n")
    assert b'"type":"stream_gap"' in body
    assert body.endswith(b"data: [DONE]\n\n")


def test_slow_reader_memory_is_bounded_by_the_log_cap():
    store = MemoryStore(max_events=100)
    store.create("s", {})
    for _ in range(10_000):
        store.append("s", [b"x" * 10])
    log = store._logs["s"]
    assert len(log.entries) == 100 and log.last_seq == 10_000


def test_keepalive_while_waiting_and_close_detaches_once():
    store = MemoryStore()
    store.create("s", {})
    store.attach("s")
    closed = []
    reader = StreamReader(
        lambda a, t: store.read("s", a, t),
        0,
        keepalive=0.01,
        on_close=lambda: closed.append(store.detach("s")),
    )
    assert next(reader) == b": keepalive\n\n"
    reader.close()
    reader.close()
    assert closed == [0]
    with pytest.raises(StopIteration):
        next(reader)


def test_memory_store_expires_finished_streams_after_ttl():
    store = MemoryStore(ttl=0)
    store.create("old", {})
    store.append("old", [b"x"], final=True)
    store.create("new", {})  # creating sweeps expired logs
    assert store.meta("old") is None
    assert store.meta("new") == {}


def test_watchdog_aborts_orphans_after_grace_but_not_readers_that_came_back():
    store = MemoryStore()
    engine = Engine(store, EngineSettings(disconnect_grace=1.0, total_timeout=0, silence_timeout=0))
    provider = FakeProvider(script=[FakeReply(text="a b c", stall=30, stall_after=1)], delay=0)
    gen = engine.start(provider.open(ASK))
    store.attach(gen.stream_id)
    engine._detached(gen.stream_id)
    assert gen.orphaned_at is not None
    store.attach(gen.stream_id)  # a client came back within the grace
    engine.check(gen.orphaned_at + 2)
    assert gen.abort_reason is None and gen.orphaned_at is None
    engine._detached(gen.stream_id)
    engine.check(gen.orphaned_at + 0.5)
    assert gen.abort_reason is None
    engine.check(gen.orphaned_at + 1.5)
    assert gen.abort_reason == "disconnected"
    assert gen.done.wait(5)
    assert gen.status == "cancelled"


def test_disconnect_policy_finish_runs_to_the_end():
    store = MemoryStore()
    engine = Engine(store, EngineSettings(disconnect_grace=0.1, disconnect_policy="finish"))
    provider = FakeProvider(script=[FakeReply(text="a b c", stall=0.3, stall_after=1)], delay=0)
    gen = engine.start(provider.open(ASK))
    store.attach(gen.stream_id)
    engine._detached(gen.stream_id)
    assert gen.orphaned_at is not None
    engine.check(gen.orphaned_at + 10)
    assert gen.abort_reason is None
    assert gen.done.wait(5)
    assert gen.status == "completed"


def test_stream_expiring_under_a_reader_ends_with_an_error_event_with_an_id():
    """Regression: an expired stream ended the response without [DONE]; store errors had no id."""
    store = MemoryStore()
    store.create("s", {})
    store.append("s", [b"id: s:1\ndata: {}\n\n"])
    reader = StreamReader(
        lambda after, t: store.read("s", after, t),
        0,
        keepalive=0.01,
        event_id=lambda seq: f"s:{seq}",
    )
    assert next(reader) == b"id: s:1\ndata: {}\n\n"
    store._logs.pop("s")  # expired
    body = b"".join(reader)
    assert body.startswith(b"event: error\nid: s:1\n")
    assert b'"type":"not_found"' in body
    assert body.endswith(b"data: [DONE]\n\n")


def test_log_wakes_every_waiting_reader_under_real_threads():
    """The armed-flag wake-up never loses a notification: a reader that waited and got
    nothing could only have timed out, so no read may come back empty before the end."""
    log = StreamLog()
    total = 20_000
    results: dict[int, tuple[list[bytes], int]] = {}

    def reader(n: int) -> None:
        got: list[bytes] = []
        empty = 0
        after = 0
        while True:
            entries, ended = log.read(after, 10.0)
            if not entries and not ended:
                empty += 1
            got.extend(entries)
            after += len(entries)
            if ended and after == log.last_seq:
                break
        results[n] = (got, empty)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for i in range(total):
        log.append([str(i).encode()], final=i == total - 1)
    for t in threads:
        t.join(60)
    expected = [str(i).encode() for i in range(total)]
    for got, empty in results.values():
        assert got == expected
        assert empty == 0
    assert len(results) == 3


def test_watchdog_forgets_ended_generations_and_times_out_silent_ones():
    store = MemoryStore()
    engine = Engine(store, EngineSettings(silence_timeout=5, total_timeout=0))
    provider = FakeProvider(
        script=["quick", FakeReply(text="a b", stall=30, stall_after=1)], delay=0
    )
    quick = engine.start(provider.open(ASK))
    assert quick.done.wait(5)
    assert quick.stream_id not in engine.active  # forgotten as soon as it ended
    silent = engine.start(provider.open(ASK))
    engine.check(silent.last_activity + 4)
    assert silent.abort_reason is None
    engine.check(silent.last_activity + 6)
    assert silent.abort_reason == "timeout"
    assert silent.done.wait(5)
    assert silent.status == "failed" and silent.error.type == "timeout"
    assert engine.active == {} and engine._due_at == {}
