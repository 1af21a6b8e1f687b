"""One measured load run: the servers under test, the load generator, the samples.

A *target* is what the load generator streams from: ``ours`` (the example app
relaying through flask-ai-sse), ``baseline`` (the hand-written Flask +
``requests`` relay) or ``direct`` (the mock upstream itself, no relay). Both
relays run under the same gunicorn command: one gevent worker.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procs

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "chat"
API_KEY = "bench-key"
PROMPT_BODY = json.dumps({"prompt": "Say something."})
DIRECT_BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say something."}],
        "stream": True,
    }
)
WARMUP_STREAMS = 5
SAMPLE_EVERY = 0.2


@dataclass(frozen=True)
class Load:
    n: int
    tokens: int
    delay_ms: float
    rate: float

    @property
    def stream_seconds(self) -> float:
        return (self.tokens - 1) * self.delay_ms / 1000

    @property
    def deadline(self) -> float:
        """The load generator's bound on the whole run: generous, but finite."""
        return 60 + 3 * (self.n / self.rate + self.stream_seconds)


def start_mock(load: Load, log_dir: Path) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    argv = [sys.executable, "-m", "flask_ai_sse.testing.upstream", "--format", "openai"]
    argv += ["--port", str(port), "--tokens", str(load.tokens), "--delay-ms", str(load.delay_ms)]
    mock = procs.spawn("mock-upstream", argv, log_dir)
    procs.wait_port(port, mock)
    return mock, port


def gunicorn_argv(port: int, chdir: Path, app: str) -> list[str]:
    """The same gunicorn command for both relays: one gevent worker, room for 20k sockets."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gevent",
        "-w",
        "1",
        "--worker-connections",
        "20000",
        "--backlog",
        "4096",
        "--no-control-socket",
        "--graceful-timeout",
        "5",
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(chdir),
        app,
    ]


def start_relay(target: str, mock_port: int, log_dir: Path) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    if target == "ours":
        argv = gunicorn_argv(port, EXAMPLE, "app:create_app()")
        env = {
            "AI_SSE_PROVIDER": "openai",
            "AI_SSE_BASE_URL": upstream,
            "AI_SSE_STORE": "memory",
            "APP_AI_SSE_API_KEY": json.dumps(API_KEY),
            # Every stream comes from one address here: lift the per-key connection cap.
            "APP_AI_SSE_MAX_CONNECTIONS_PER_KEY": "null",
            # The example app wants a database; the streams here never touch it.
            "DATABASE_URL": f"sqlite:///{log_dir / 'example.db'}",
        }
    else:
        argv = gunicorn_argv(port, HERE, "baseline_app:create_app()")
        env = {"BASELINE_UPSTREAM": upstream, "BASELINE_API_KEY": API_KEY}
    server = procs.spawn(f"{target}-gunicorn", argv, log_dir, env)
    procs.wait_port(port, server)
    return server, port


def loadgen_argv(target: str, port: int, load: Load, out: Path) -> list[str]:
    path, body, headers = {
        "ours": ("/ai/stream", PROMPT_BODY, []),
        "baseline": ("/stream", PROMPT_BODY, []),
        "direct": ("/v1/chat/completions", DIRECT_BODY, [f"Authorization: Bearer {API_KEY}"]),
    }[target]
    argv = [sys.executable, str(HERE / "loadgen.py"), "--port", str(port), "--path", path]
    argv += ["--body", body, "--n", str(load.n), "--rate", str(load.rate)]
    argv += ["--tokens", str(load.tokens), "--deadline", str(load.deadline), "--out", str(out)]
    for header in headers:
        argv += ["--header", header]
    return argv


def mock_open_streams(mock_port: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
        connection = http.client.HTTPConnection("127.0.0.1", mock_port, timeout=2)
        try:
            connection.request("GET", "/_mock/stats")
            return int(json.loads(connection.getresponse().read())["open_streams"])
        finally:
            connection.close()
    return None


def run_loadgen(
    name: str, target: str, port: int, load: Load, log_dir: Path
) -> tuple[procs.Proc, Path]:
    out = log_dir / f"{name}.json"
    out.unlink(missing_ok=True)
    return procs.spawn(name, loadgen_argv(target, port, load, out), log_dir), out


def finish_loadgen(proc: procs.Proc, out: Path, timeout: float) -> dict[str, Any]:
    try:
        proc.popen.wait(timeout)
    except Exception:
        procs.stop(proc)
        raise
    if proc.popen.returncode != 0 or not out.exists():
        raise RuntimeError(f"load generator failed ({proc.popen.returncode}); see {proc.log}")
    return dict(json.loads(out.read_text()))


def measure(
    target: str, load: Load, mock: procs.Proc, mock_port: int, log_dir: Path, profile: bool = False
) -> dict[str, Any]:
    """Start the target's server (if any), warm it up, load it, and sample it."""
    started: list[procs.Proc] = []
    try:
        if target == "direct":
            worker, port = None, mock_port
        else:
            server, port = start_relay(target, mock_port, log_dir)
            started.append(server)
            worker = procs.only_child(server.pid)
        warm, warm_out = run_loadgen(
            f"{target}-warmup", target, port, Load(WARMUP_STREAMS, load.tokens, 0, 50), log_dir
        )
        started.append(warm)
        finish_loadgen(warm, warm_out, load.deadline)
        if profile and worker is not None:
            started.append(start_profiler(target, worker, log_dir))
        mock_cpu = procs.cpu_seconds(mock.pid)
        result = sample_load(target, load, port, mock_port, worker, log_dir, started)
        result["mock_cpu_s"] = round(procs.cpu_seconds(mock.pid) - mock_cpu, 3)
        result["target"] = target
        return result
    finally:
        for proc in reversed(started):
            procs.stop(proc)


def sample_load(
    target: str,
    load: Load,
    port: int,
    mock_port: int,
    worker: int | None,
    log_dir: Path,
    started: list[procs.Proc],
) -> dict[str, Any]:
    """Run the load generator; sample worker RSS and open upstream streams until it ends."""
    rss_before = procs.rss_kib(worker) if worker else None
    cpu_before = procs.cpu_times(worker) if worker else None
    busy_before = procs.machine_jiffies()
    began = time.monotonic()
    gen, out = run_loadgen(f"{target}-load", target, port, load, log_dir)
    started.append(gen)
    samples: list[tuple[float, int, int]] = []  # (seconds, open upstream streams, worker RSS)
    while gen.alive() and time.monotonic() - began < load.deadline + 30:
        opened = mock_open_streams(mock_port)
        if worker and opened is not None:
            samples.append((round(time.monotonic() - began, 2), opened, procs.rss_kib(worker)))
        time.sleep(SAMPLE_EVERY)
    result = finish_loadgen(gen, out, timeout=30)
    busy_after = procs.machine_jiffies()
    result["machine_busy"] = round(
        (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1]), 3
    )
    if worker and cpu_before is not None and rss_before is not None:
        (user_after, sys_after), (user_before, sys_before) = procs.cpu_times(worker), cpu_before
        user, system = user_after - user_before, sys_after - sys_before
        cpu = user + system
        result["server_cpu_s"] = round(cpu, 3)
        result["server_user_s"], result["server_sys_s"] = round(user, 3), round(system, 3)
        result["cpu_us_per_token"] = (
            round(cpu * 1e6 / result["tokens"], 2) if result["tokens"] else None
        )
        result.update(plateau(samples, rss_before, load.stream_seconds))
    return result


def plateau(
    samples: list[tuple[float, int, int]], rss_before: int, stream_seconds: float
) -> dict[str, Any]:
    """RSS per open stream where the most streams were open, before any stream could end.

    Before the first stream ends, the memory store holds no finished stream (it keeps
    their logs for ``AI_SSE_STREAM_TTL`` for resume): what RSS grew by is open streams.
    Among ties, the highest RSS. Without such samples, all samples count.
    """
    if not samples:
        return {"rss_before_kib": rss_before}
    early = [sample for sample in samples if sample[0] <= stream_seconds and sample[1]]
    at, top, rss = max(early or samples, key=lambda sample: (sample[1], sample[2]))
    return {
        "rss_before_kib": rss_before,
        "rss_plateau_kib": rss,
        "plateau_open": top,
        "plateau_at_s": at,
        "rss_kib_per_stream": round((rss - rss_before) / top, 2) if top else None,
        "rss_end_kib": samples[-1][2],
        "samples": samples,
    }


def start_profiler(target: str, worker: int, log_dir: Path) -> procs.Proc:
    """py-spy (``pip install py-spy``; not a project dependency) on the worker, raw stacks."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [exe, "record", "--pid", str(worker), "--format", "raw", "--rate", "100"]
    argv += ["--output", str(log_dir / f"{target}-profile.txt")]
    return procs.spawn(f"{target}-py-spy", argv, log_dir)
