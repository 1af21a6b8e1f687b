"""Does a finished stream cost memory beyond AI_SSE_STREAM_TTL? Run past the TTL and see.

    python benchmarks/ttl.py --ttl 15 --n 2000             # released at expiry?
    python benchmarks/ttl.py --ttl 600 --n 2000 --wait 20  # kept: grows per round

Starts the mock upstream and our relay (as ``run.py`` does) with
``AI_SSE_STREAM_TTL=--ttl``, and relays streams in rounds: ``--n`` streams of
``--tokens``, a wait past the TTL, five streams (the memory
store sweeps expired logs when a stream is created), then the worker's RSS. Freed
memory stays in the process's allocator, so RSS does not fall at expiry; but if the
logs were released, the next round reuses their memory and RSS stops growing,
where a TTL longer than the wait grows it round after round.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import procs
from harness import Load, finish_loadgen, run_loadgen, start_mock, start_relay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=float, default=20)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=30, help="per stream, 5 ms apart")
    parser.add_argument("--wait", type=float, help="seconds after each round (TTL + 5)")
    args = parser.parse_args()
    if args.wait is None:
        args.wait = args.ttl + 5
    os.environ["AI_SSE_STREAM_TTL"] = str(args.ttl)
    load = Load(args.n, args.tokens, 5, args.rate)
    log_dir = Path(tempfile.mkdtemp(prefix="ttl-"))
    mock, mock_port = start_mock(load, log_dir)
    started = [mock]
    try:
        server, port = start_relay("ours", mock_port, log_dir)
        started.append(server)
        worker = procs.only_child(server.pid)

        def streams(name: str, how: Load) -> None:
            gen, out = run_loadgen(name, "ours", port, how, log_dir)
            started.append(gen)
            result = finish_loadgen(gen, out, how.deadline)
            assert result["completed"] == how.n, result

        streams("warmup", Load(50, args.tokens, 5, 50))
        rss = [procs.rss_kib(worker)]
        for round_ in range(1, args.rounds + 1):
            streams(f"load-{round_}", load)
            time.sleep(args.wait)
            streams(f"sweep-{round_}", Load(5, args.tokens, 5, 50))  # creating a stream sweeps
            rss.append(procs.rss_kib(worker))
        print(
            f"TTL {args.ttl:g} s, rounds of {args.n} streams of {args.tokens} tokens, each "
            f"followed by {args.wait:g} s and 5 streams; log: {log_dir}"
        )
        for round_, (was, now) in enumerate(itertools.pairwise(rss), 1):
            print(
                f"  round {round_}: RSS {was} -> {now} KiB, "
                f"{(now - was) * 1024 / args.n:+.0f} B per finished stream"
            )
    finally:
        for proc in reversed(started):
            procs.stop(proc)


if __name__ == "__main__":
    main()
