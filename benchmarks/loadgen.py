"""The load generator: N concurrent SSE streams from one gevent process, on raw sockets.

Opens streams at ``--rate`` per second until ``--n`` are started, reads each
response to its end, and timestamps every token event on arrival. Writes a
JSON summary: completed/failed counts (and why), tokens received, and in ms:
time to connect, to the response head and to the first token event (each from
the start of the connect), and the gaps between token events.

    python benchmarks/loadgen.py --port 8000 --path /ai/stream --body '{"prompt": "hi"}' \\
        --n 1000 --rate 500 --tokens 50 --out result.json

A stream completes when its status is 200, it delivered exactly ``--tokens``
token events, then ``data: [DONE]``, and its body ended. Nothing is retried.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.socket
from gevent.pool import Group
from wire import ProtocolError, StreamParser


@dataclass
class Totals:
    """What every stream adds to, plus the live count of open streams."""

    completed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    tokens: int = 0
    connect: list[float] = field(default_factory=list)
    headers: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    open: int = 0
    peak_open: int = 0


def build_request(host: str, port: int, path: str, body: bytes, headers: list[str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Accept: text/event-stream",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run_stream(
    address: tuple[str, int], request: bytes, expected: int, idle: float, totals: Totals
) -> None:
    """One stream from connect to the end of its body; records the outcome in ``totals``."""
    parser = StreamParser()
    tokens = 0
    outcome = "killed"  # replaced unless the harness' deadline kills this greenlet
    start = time.perf_counter()
    last: float | None = None
    sock = None
    connected = False
    try:
        # An IP address and a bare connect(): no trip through gevent's resolver threads.
        sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(idle)
        sock.connect(address)
        connected = True
        totals.connect.append(time.perf_counter() - start)
        totals.open += 1
        totals.peak_open = max(totals.peak_open, totals.open)
        sock.sendall(request)
        while not parser.ended:
            data = sock.recv(65536)
            if not data:
                parser.eof()
                break
            had_status = parser.status is not None
            count = parser.feed(data)
            if not had_status and parser.status is not None:
                totals.headers.append(time.perf_counter() - start)
            if count:
                now = time.perf_counter()
                if last is None:
                    totals.ttft.append(now - start)
                else:
                    totals.gaps.append(now - last)
                totals.gaps.extend([0.0] * (count - 1))  # arrived in the same read
                last = now
                tokens += count
        outcome = _outcome(parser, tokens, expected)
    except TimeoutError:
        where = "connect" if not connected else "head" if parser.status is None else "body"
        outcome = f"idle timeout ({where})"
    except OSError as exc:
        outcome = f"socket: {exc.strerror or type(exc).__name__}"
    except (ProtocolError, ValueError) as exc:
        outcome = f"protocol: {exc}"
    finally:
        totals.tokens += tokens
        if sock is not None:
            sock.close()
        if connected:
            totals.open -= 1
        if outcome == "ok":
            totals.completed += 1
        else:
            totals.failures[outcome] += 1


def _outcome(parser: StreamParser, tokens: int, expected: int) -> str:
    if parser.status != 200:
        return f"HTTP {parser.status}"
    if parser.error:
        return "error event"
    if not parser.ended:
        return "body cut short"
    if not parser.done:
        return "no [DONE]"
    if tokens != expected:
        return "wrong token count"
    return "ok"


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds (nearest rank)."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 3)

    return {"p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    address = (args.host, args.port)
    request = build_request(args.host, args.port, args.path, args.body.encode(), args.header)
    totals = Totals()
    group = Group()
    began = time.perf_counter()
    deadline = began + args.deadline
    for i in range(args.n):  # the ramp: stream i starts at i / rate seconds
        delay = began + i / args.rate - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        if time.perf_counter() > deadline:
            totals.failures["not started (deadline)"] += args.n - i
            break
        group.spawn(run_stream, address, request, args.tokens, args.idle_timeout, totals)
    ramp = time.perf_counter() - began
    group.join(timeout=max(0.0, deadline - time.perf_counter()))
    group.kill(block=True, timeout=10)
    return {
        "n": args.n,
        "rate": args.rate,
        "completed": totals.completed,
        "failed": sum(totals.failures.values()),
        "failures": dict(totals.failures),
        "tokens": totals.tokens,
        "peak_open": totals.peak_open,
        "ramp_s": round(ramp, 3),
        "wall_s": round(time.perf_counter() - began, 3),
        "connect_ms": percentiles(totals.connect),
        "headers_ms": percentiles(totals.headers),
        "ttft_ms": percentiles(totals.ttft),
        "gap_ms": percentiles(totals.gaps),
        "client_cpu_s": round(_cpu_seconds(), 3),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", required=True, help="the JSON body of each POST")
    parser.add_argument("--header", action="append", default=[], help="an extra 'Name: value'")
    parser.add_argument("--n", type=int, required=True, help="streams to open")
    parser.add_argument("--rate", type=float, default=500.0, help="streams started per second")
    parser.add_argument("--tokens", type=int, required=True, help="token events per stream")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="seconds of silence")
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the whole run")
    parser.add_argument("--out", required=True, help="where to write the JSON summary")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = run(args)
    with open(args.out, "w") as file:
        json.dump(result, file, indent=2)


if __name__ == "__main__":
    main()
