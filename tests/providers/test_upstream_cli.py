"""The mock upstream as its own process under gevent, as benchmarks run it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from flask_ai_sse.sse import iter_events


@pytest.fixture
def standalone() -> Iterator[str]:
    """``python -m flask_ai_sse.testing.upstream`` on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask_ai_sse.testing.upstream",
            "--format",
            "openai",
            "--port",
            "0",
            "--tokens",
            "5",
            "--delay-ms",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    announced: list[str] = []
    reader = threading.Thread(target=lambda: announced.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(20)  # a cold interpreter importing gevent: about a second; 20 for a loaded machine
    try:
        assert announced and " at http://" in announced[0], (
            proc.stderr.read() if proc.poll() else ""
        )  # type: ignore[union-attr]
        yield announced[0].rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]
        stderr = proc.stderr.read()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        assert "Traceback" not in stderr and "Warning" not in stderr, stderr


local = threading.local()


def one_stream(base_url: str) -> str:
    """One streamed answer, on this thread's own keep-alive session."""
    session = local.__dict__.setdefault("session", requests.Session())
    body = {"model": "m", "messages": [], "stream": True}
    with session.post(f"{base_url}/chat/completions", json=body, stream=True, timeout=10) as r:
        r.raise_for_status()
        text = ""
        for event in iter_events(r.iter_content(chunk_size=None)):  # to the end: pooled again
            if event.data == "[DONE]":  # type: ignore[union-attr]
                continue
            for choice in event.json()["choices"]:  # type: ignore[union-attr]
                text += choice["delta"].get("content") or ""
        return text


def test_standalone_serves_concurrent_streams_and_stats(standalone: str) -> None:
    origin = standalone.removesuffix("/v1")
    with ThreadPoolExecutor(50) as pool:
        texts = list(pool.map(lambda _: one_stream(standalone), range(200)))
    assert set(texts) == {"tok0 tok1 tok2 tok3 tok4 "}
    stats = requests.get(f"{origin}/_mock/stats", timeout=5).json()
    assert stats["streams_completed"] == 200 and stats["open_streams"] == 0
    assert stats["connections_total"] < 100  # keep-alive: threads reuse their connections
