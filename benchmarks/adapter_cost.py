"""The provider adapter's own cost, one stream after another, in one process.

    python benchmarks/adapter_cost.py --streams 100 --tokens 2
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/adapter_cost.py --streams 100 --tokens 2

Opens ``--streams`` streams through the OpenAI adapter (``provider.open`` then
iterating its chunks, as the producer does) against a mock upstream in its own
process, under gevent's monkey-patching as in a gunicorn gevent worker. CPU time
on this shared machine moves 10-25% between runs; instruction counts under
callgrind do not, so the README's set-up and per-token figures are differences
of callgrind totals: ``--streams N`` minus ``--streams 0`` (the same warm-up and
imports), divided by N. ``--profile`` prints cProfile's top functions instead.

``--open N`` measures memory instead: N streams open at once, each read by its
own greenlet (as producers do) and all blocked between two tokens; prints the
growth of RSS and of traced Python memory per open stream, and the biggest
allocation sites (``tracemalloc``).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import procs  # noqa: E402

from flask_ai_sse.chunks import ChatRequest  # noqa: E402
from flask_ai_sse.providers import OpenAIProvider  # noqa: E402
from flask_ai_sse.providers.base import ProviderConfig  # noqa: E402

WARM_UP = 5


def run(provider: OpenAIProvider, streams: int) -> int:
    request = ChatRequest(messages=[{"role": "user", "content": "Hello"}], model="gpt-4o-mini")
    chunks = 0
    for _ in range(streams):
        with provider.open(request) as stream:
            for _chunk in stream:
                chunks += 1
    return chunks


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def hold_open(provider: OpenAIProvider, n: int) -> None:
    """N streams open at once, each read by its own greenlet up to its first text chunk."""
    request = ChatRequest(messages=[{"role": "user", "content": "Hello"}], model="gpt-4o-mini")
    ready = gevent.event.Event()
    started: list[int] = []
    streams = []

    def read() -> None:
        with provider.open(request) as stream:
            streams.append(stream)
            for chunk in stream:  # blocks in the socket read until the next token
                if chunk.kind == "text" and not started.count(id(stream)):
                    started.append(id(stream))
                    if len(started) == n:
                        ready.set()

    run(provider, WARM_UP)
    tracemalloc.start(10)
    before_rss, before = rss_kib(), tracemalloc.take_snapshot()
    greenlets = [gevent.spawn(read) for _ in range(n)]
    ready.wait(120)
    # Every stream is now blocked until its next token (the mock's delay is long).
    after_rss, after = rss_kib(), tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    traced = sum(stat.size_diff for stat in stats)
    print(
        f"{len(started)} open: RSS +{(after_rss - before_rss) / n:.1f} KiB/stream, "
        f"traced Python +{traced / n / 1024:.1f} KiB/stream"
    )
    for stat in stats[:25]:
        print(
            f"  {stat.size_diff / n:8.0f} B/stream  {stat.count_diff / n:5.1f} blocks  "
            f"{stat.traceback[0]}"
        )
    for stream in streams:
        stream.abort()
    gevent.joinall(greenlets, timeout=60)


def after_finished(provider: OpenAIProvider, n: int) -> None:
    """Traced memory left behind by ``n`` finished streams (the transport should keep none)."""
    import gc

    run(provider, WARM_UP)
    gc.collect()
    tracemalloc.start(10)
    before = tracemalloc.take_snapshot()
    run(provider, n)
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(before, "lineno")
    traced = sum(stat.size_diff for stat in stats)
    print(f"{n} finished: traced Python {traced:+d} B in all, {traced / n:+.1f} B per stream")
    for stat in stats[:5]:
        print(f"  {stat.size_diff:+8d} B  {stat.traceback[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=2)
    parser.add_argument(
        "--delay-ms", type=float, default=5, help="long enough that each token arrives alone"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--open", type=int, default=0, help="measure memory with N open")
    parser.add_argument("--finished", action="store_true", help="memory left by --streams")
    args = parser.parse_args()

    port = procs.free_port()
    mock = subprocess.Popen(
        [
            *(sys.executable, "-m", "flask_ai_sse.testing.upstream", "--format", "openai"),
            *("--port", str(port), "--tokens", str(args.tokens)),
            *("--delay-ms", str(args.delay_ms)),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or mock.poll() is not None:
                    raise
                time.sleep(0.1)
        config = ProviderConfig(
            name="openai", api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1"
        )
        provider = OpenAIProvider(config)
        if args.open:
            hold_open(provider, args.open)
            return
        if args.finished:
            after_finished(provider, args.streams)
            return
        run(provider, WARM_UP)
        started = time.process_time()
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            chunks = profile.runcall(run, provider, args.streams)
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        else:
            chunks = run(provider, args.streams)
        cpu = time.process_time() - started
        per_stream = cpu / args.streams * 1e6 if args.streams else 0.0
        print(f"{args.streams} streams, {chunks} chunks, {per_stream:.0f} us CPU per stream")
        provider.close()
    finally:
        mock.terminate()
        mock.wait(timeout=10)


if __name__ == "__main__":
    main()
