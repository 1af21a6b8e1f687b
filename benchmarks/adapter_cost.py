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
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import procs  # noqa: E402
import socket  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=2)
    parser.add_argument(
        "--delay-ms", type=float, default=5, help="long enough that each token arrives alone"
    )
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    port = procs.free_port()
    mock = subprocess.Popen(
        [sys.executable, "-m", "flask_ai_sse.testing.upstream", "--format", "openai"]
        + ["--port", str(port), "--tokens", str(args.tokens), "--delay-ms", str(args.delay_ms)],
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
        run(provider, WARM_UP)
        started = time.process_time()
        if args.profile:
            profile = cProfile.Profile()
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
