"""Summarize a py-spy raw (collapsed) profile: where the worker's CPU went.

    python benchmarks/hotspots.py benchmarks/results/<run>/ours-profile.txt [--top 25]

Prints the functions with the most samples on top of the stack (self time) and
the most samples anywhere in the stack (inclusive time), as shares of all samples.
Line numbers are dropped so that one function is one row. Stacks of gevent's
threadpool workers waiting for work are dropped: py-spy counts those blocked
threads as active, but ``/proc/<pid>/task/*/stat`` shows they use no CPU.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_IDLE = "acquire_with_timeout (gevent/_threading.py)"


def load(path: Path) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        if frames[-1] == _IDLE:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return own, inclusive, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own, inclusive, total = load(args.profile)
    for title, counts in (("self", own), ("inclusive", inclusive)):
        print(f"\n{title} (of {total} samples)")
        for frame, count in counts.most_common(args.top):
            print(f"{100 * count / total:6.1f}%  {frame}")


if __name__ == "__main__":
    main()
