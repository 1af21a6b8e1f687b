"""Does a finished stream cost memory beyond AI_SSE_STREAM_TTL? Run past the TTL and see.

    python benchmarks/ttl.py --ttl 20 --n 2000

Starts the mock upstream and our relay (as ``run.py`` does) with
``AI_SSE_STREAM_TTL=--ttl``, relays ``--n`` short streams, then samples the worker's
RSS until well past the TTL. The memory store sweeps expired logs when a stream is
created or read, so five more streams go through after the TTL before the last
sample. Prints RSS before, after the load, and after expiry, per finished stream.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    os.environ["AI_SSE_STREAM_TTL"] = str(args.ttl)
    load = Load(args.n, 2, 20, args.rate)
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

        streams("warmup", Load(50, 2, 20, 50))
        before = procs.rss_kib(worker)
        streams("load", load)
        ended = time.monotonic()
        after = procs.rss_kib(worker)
        samples = []
        while time.monotonic() - ended < args.ttl + 10:
            time.sleep(1)
            samples.append((round(time.monotonic() - ended), procs.rss_kib(worker)))
        streams("sweep", Load(5, 2, 20, 50))
        expired = procs.rss_kib(worker)
        print(f"TTL {args.ttl:g} s, {args.n} streams of 2 tokens, log: {log_dir}")
        print(
            f"RSS before {before} KiB, after the load {after} KiB "
            f"(+{(after - before) * 1024 / args.n:.0f} B per finished stream)"
        )
        print(
            f"after expiry and a sweep {expired} KiB "
            f"(+{(expired - before) * 1024 / args.n:.0f} B per finished stream)"
        )
        print("samples (s after the load, KiB):", samples)
    finally:
        for proc in reversed(started):
            procs.stop(proc)


if __name__ == "__main__":
    main()
