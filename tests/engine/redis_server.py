"""A redis-server of a test's own, on a free loopback port, that the test may pause,
restart or kill (never the shared one): see the ``own_redis`` fixture."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from ..helpers import free_port, need_service, wait_for_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """One ``redis-server`` process; AOF on, so a graceful restart keeps the data."""

    def __init__(self, workdir: Path, *, extra: list[str] | None = None) -> None:
        if not Path(REDIS_SERVER).exists():
            need_service("redis-server", f"{REDIS_SERVER} is not installed")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        cmd = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            "--maxclients", "10000",
            *self.extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)
        deadline = time.monotonic() + 10
        while True:  # the port opens before the AOF is loaded
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling for readiness, not an assertion

    def client(self, **options: Any) -> redis.Redis:
        options.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a stall, a failover)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """A graceful shutdown (the AOF is flushed), every connection closed."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        if down_for:
            time.sleep(down_for)  # the outage being simulated, not an assertion
        self.start()

    def clients(self, name_filter: str | None = None) -> list[dict[str, Any]]:
        """``CLIENT LIST``, without this query's own connection."""
        with self.client() as client:
            me = client.client_id()
            return [c for c in client.client_list() if int(c["id"]) != me]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc is not None and self.paused:
                self.resume()  # SIGCONT before anything else, always
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
