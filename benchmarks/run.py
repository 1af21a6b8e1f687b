"""Benchmark flask-ai-sse's relay against a hand-written Flask + requests relay.

    python benchmarks/run.py --scenario all          # the standard sizes
    python benchmarks/run.py --scenario all --quick  # a smoke test, < 1 min

Per scenario: a mock OpenAI upstream (T tokens D ms apart), then for each
target in turn a fresh gunicorn (one gevent worker) and a load generator in
its own process. Prints Markdown and writes JSON to ``benchmarks/results/``.
See README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procs
import report
from harness import Load, measure, start_mock

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Scenario:
    kind: str  # the standard scenario: a, b or c (which targets apply)
    label: str
    load: Load
    quick: Load
    targets: tuple[str, ...]


RELAYS = ("ours", "baseline")
#: The standard scenarios. (b) asks for N=10000, but one worker cannot hold that many relayed
#: streams under the 20000 descriptor limit (two per stream): N=9000. Its streams last
#: 14.5 s, so all N are open at once only if they start faster than 620/s: "b" ramps at
#: 1000/s; "b-steady" ramps at 100/s, a rate one worker on this machine keeps up with.
SCENARIOS: dict[str, list[Scenario]] = {
    "a": [Scenario("a", "a", Load(1000, 50, 20, 500), Load(40, 10, 10, 200), RELAYS)],
    "b": [
        Scenario("b", "b", Load(9000, 30, 500, 1000), Load(200, 5, 250, 400), RELAYS),
        Scenario("b", "b-steady", Load(9000, 30, 500, 100), Load(100, 5, 250, 100), RELAYS),
    ],
    "c": [Scenario("c", "c", Load(100, 50, 20, 200), Load(10, 10, 10, 100), ("direct", *RELAYS))],
    # Memory per open stream alone: b's stream shape at N=3000, all open at once at 1000/s.
    "m": [Scenario("b", "m", Load(3000, 30, 500, 1000), Load(200, 5, 250, 400), RELAYS)],
}


def run_scenario(scenario: Scenario, load: Load, log_dir: Path, profile: bool) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    mock, mock_port = start_mock(load, log_dir)
    try:
        results = {}
        for target in scenario.targets:
            print(f"  {log_dir.name}: {target} ...", flush=True)
            profiled = profile and target != "direct"
            results[target] = measure(target, load, mock, mock_port, log_dir, profiled)
        return results
    finally:
        procs.stop(mock)


def source_tree() -> dict[str, Any]:
    """Which library code was measured: other people edit the tree while benchmarks run."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "flask_ai_sse", "examples").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted": changed}


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: nothing is left running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["a", "b", "c", "m", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--profile", action="store_true", help="py-spy the relays (skews CPU)")
    parser.add_argument("--repeat", type=int, default=1, help="run each scenario this often")
    sizes = parser.add_argument_group("exploring: override the scenario's sizes")
    sizes.add_argument("--n", type=int)
    sizes.add_argument("--tokens", type=int)
    sizes.add_argument("--delay-ms", type=float)
    sizes.add_argument("--rate", type=float, help="streams started per second")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by every child

    overrides = {
        key: value
        for key in ("n", "tokens", "delay_ms", "rate")
        if (value := getattr(args, key)) is not None
    }
    custom = args.quick or bool(overrides)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    stamp += "-custom" if overrides else ""
    log_dir = RESULTS / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    names = ["a", "b", "c"] if args.scenario == "all" else [args.scenario]
    document: dict[str, Any] = {
        "quick": args.quick,
        "overrides": overrides,
        "profile": args.profile,
        "source": source_tree(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "runs": [],
    }
    sections = []
    for repeat in range(1, args.repeat + 1):
        for scenario in (s for name in names for s in SCENARIOS[name]):
            base = scenario.quick if args.quick else scenario.load
            load = dataclasses.replace(base, **overrides)
            label = f"{scenario.label}-{repeat}" if args.repeat > 1 else scenario.label
            results = run_scenario(scenario, load, log_dir / label, args.profile)
            spec = dataclasses.asdict(load)
            run = {"label": label, "kind": scenario.kind, "load": spec, "results": results}
            document["runs"].append(run)
            sections.append(report.scenario_markdown(scenario.kind, label, spec, results, custom))
            (log_dir / "results.json").write_text(json.dumps(document, indent=2))
    markdown = "\n".join(sections)
    (log_dir / "results.md").write_text(markdown)
    print()
    print(markdown)
    print(f"JSON and logs: {log_dir}")


if __name__ == "__main__":
    sys.exit(main())
