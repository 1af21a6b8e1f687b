"""A client that stops reading is dropped after ``AI_SSE_SEND_TIMEOUT``: its connection
closes on the server, and the generation's disconnect grace runs (it is cancelled)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from flask_ai_sse.engine.reader import StreamReader
from flask_ai_sse.engine.redis_store import RedisStore

from ..helpers import wait_until

APP = "tests.apps.hardening_app:create_app()"
# 1500 chunks of 4 KB, 20 ms apart: 30 s of answer, 200 KB/s, far more than the socket
# buffers between a server and a client that reads nothing.
BIG_REPLY = [1500, 4096, 0.02]


def server_side_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server's socket of this connection, from ``/proc/net/tcp``:
    > 0 while a process holds it, 0 once closed (the kernel still flushing it), ``None``
    when the connection is gone."""
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (
                server_port,
                client_port,
            ):
                return int(fields[9])
    return None


def stalled_client(port: int) -> tuple[socket.socket, str]:
    """A raw client with a tiny receive buffer that reads the ``start`` event, then stops."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /ai/stream?prompt=x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    seen = b""
    while b'"stream_id":"' not in seen or b"\n\n" not in seen.split(b'"stream_id":"', 1)[1]:
        seen += sock.recv(256)
    stream_id = seen.split(b'"stream_id":"', 1)[1].split(b'"', 1)[0].decode()
    return sock, stream_id


def start_stalled(gunicorn_server, redis_url, send_timeout: float):
    server = gunicorn_server(
        {
            "AI_SSE_STORE": redis_url,
            "AI_SSE_SEND_TIMEOUT": send_timeout,
            "AI_SSE_DISCONNECT_GRACE": 1.0,
            "TEST_BIG_REPLY": BIG_REPLY,
        },
        app=APP,
        extra_args=["--log-level", "debug"],  # the last --log-level wins
    )
    sock, stream_id = stalled_client(server.port)
    return server, sock, stream_id


def terminal(store: RedisStore, stream_id: str) -> tuple[str, dict] | None:
    """The terminal event (``done`` or ``error``) and its data once the stream has ended.

    The log holds each event as its kind, a line break and its JSON data.
    """
    result = store.read(stream_id, 0, 0)
    if result is None or not result[1]:
        return None
    entries = [e.split(b"\n", 1) for e in result[0]]
    (last,) = [(k.decode(), json.loads(d)) for k, d in entries if k in (b"done", b"error")]
    return last


@pytest.mark.server
@pytest.mark.redis
def test_a_client_that_stops_reading_is_dropped(gunicorn_server, redis_url):
    server, sock, stream_id = start_stalled(gunicorn_server, redis_url, send_timeout=1.0)
    store = RedisStore(redis_url)
    client_port = sock.getsockname()[1]
    try:
        assert store.listeners(stream_id) == 1
        assert (server_side_inode(server.port, client_port) or 0) > 0
        # The server's writes block once the buffers are full; a second later the
        # connection is shut and closed on the server, and the reader detaches...
        stalled_at = time.monotonic()
        wait_until(lambda: store.listeners(stream_id) == 0, timeout=25, what="the drop")
        dropped_after = time.monotonic() - stalled_at
        wait_until(lambda: server_side_inode(server.port, client_port) in (0, None), timeout=5)
        # ...so the generation is orphaned, and cancelled when its grace is over: long
        # before its 30 s of answer would have ended.
        wait_until(lambda: terminal(store, stream_id) is not None, timeout=10)
        event, data = terminal(store, stream_id)  # type: ignore[misc]
        assert (event, data.get("finish_reason")) == ("done", "cancelled"), data
        print(f"dropped {dropped_after:.1f} s after the client stopped reading")
    finally:
        sock.close()
        store.close()
    log = server.output()
    assert "Ignoring EPIPE" in log  # gunicorn took it for a client that left...
    assert "Traceback" not in log and "[ERROR]" not in log  # ...and logged no error


@pytest.mark.server
@pytest.mark.redis
def test_without_a_send_timeout_the_stalled_client_keeps_its_connection(gunicorn_server, redis_url):
    """The control: the same client, with ``AI_SSE_SEND_TIMEOUT = 0``."""
    server, sock, stream_id = start_stalled(gunicorn_server, redis_url, send_timeout=0)
    store = RedisStore(redis_url)
    try:
        # Long after the other test's client was dropped, this one is still attached
        # and its connection held by the worker (the polling is the measurement).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert store.listeners(stream_id) == 1
            assert terminal(store, stream_id) is None
            time.sleep(0.5)
        assert (server_side_inode(server.port, sock.getsockname()[1]) or 0) > 0
    finally:
        sock.close()
        store.close()


def test_the_reader_runs_every_close_callback_once():
    calls: list[str] = []
    reader = StreamReader(lambda after, timeout: ([], True), 0, on_close=lambda: calls.append("a"))
    reader.call_on_close(lambda: calls.append("b"))
    reader.call_on_close(lambda: 1 / 0)  # type: ignore[func-returns-value]
    reader.call_on_close(lambda: calls.append("c"))
    reader.close()
    reader.close()
    reader.call_on_close(lambda: calls.append("late"))  # already closed: runs at once
    assert calls == ["a", "b", "c", "late"]


def test_the_watch_shuts_only_sockets_whose_write_is_stuck():
    from flask_ai_sse._sendwatch import SendWatch

    watch = SendWatch(30.0)
    pairs = [socket.socketpair() for _ in range(3)]
    readers = [StreamReader(lambda after, timeout: ([], False), 0) for _ in pairs]
    for reader, (server_end, _) in zip(readers, pairs, strict=True):
        watch.watch(reader, server_end)
    now = time.monotonic()
    readers[0].writing_since = now - 40  # the server has been writing for 40 s: stuck
    readers[1].writing_since = now - 1  # a write in progress for 1 s: not yet
    readers[2].writing_since = None  # the reader waits for events: nothing to judge
    watch.check(now)
    assert watch.dropped == 1
    for i, (server_end, client_end) in enumerate(pairs):
        client_end.settimeout(0.2)
        if i == 0:
            assert client_end.recv(10) == b""  # shut down: the client sees the end
            with pytest.raises(BrokenPipeError):
                server_end.send(b"x")  # and the server's next write fails quietly (EPIPE)
        else:
            with pytest.raises(TimeoutError):
                client_end.recv(10)  # still open
    readers[1].close()  # a closed reader is no longer watched, however long ago it wrote
    readers[1].writing_since = now - 100
    watch.check(now)
    assert watch.dropped == 1
    for server_end, client_end in pairs:
        server_end.close()
        client_end.close()
