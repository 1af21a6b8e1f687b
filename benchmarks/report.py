"""The Markdown report: one table per scenario, the ratios, and the targets."""

from __future__ import annotations

from typing import Any

Result = dict[str, Any]

#: The targets for our relay (README.md, "The targets").
CPU_TARGET_US = 35.0
RSS_TARGET_KIB = 32.0
ADDED_LATENCY_TARGET_MS = 5.0

HEADER = (
    "| target | ok / failed | tokens | server CPU us/token | RSS KiB/stream (open) "
    "| TTFT p50 / p99 ms | gap p50 / p99 ms | CPU s server / mock / client | machine busy "
    "| wall s |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row(result: Result) -> str:
    ttft, gap = result["ttft_ms"], result["gap_ms"]
    rss = result.get("rss_kib_per_stream")
    rss_text = f"{_num(rss)} ({result.get('plateau_open', '-')})" if rss is not None else "-"
    failed = str(result["failed"])
    if result["failures"]:
        failed += " (" + ", ".join(f"{k}: {v}" for k, v in result["failures"].items()) + ")"
    return (
        f"| {result['target']} | {result['completed']} / {failed} | {result['tokens']} "
        f"| {_num(result.get('cpu_us_per_token'))} | {rss_text} "
        f"| {_num(ttft['p50'])} / {_num(ttft['p99'])} | {_num(gap['p50'])} / {_num(gap['p99'])} "
        f"| {_num(result.get('server_cpu_s'), 2)} / {_num(result.get('mock_cpu_s'), 2)} "
        f"/ {_num(result.get('client_cpu_s'), 2)} "
        f"| {result['machine_busy'] * 100:.0f}% | {_num(result['wall_s'])} |"
    )


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def checks(name: str, load: dict[str, Any], results: dict[str, Result]) -> list[str]:
    """The targets for this scenario, each as 'PASS'/'MISS' and the figures behind it."""
    ours, base, direct = results.get("ours"), results.get("baseline"), results.get("direct")
    lines: list[str] = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    if ours and base:
        cpu, base_cpu = ours.get("cpu_us_per_token"), base.get("cpu_us_per_token")
        rss, base_rss = ours.get("rss_kib_per_stream"), base.get("rss_kib_per_stream")
        lines.append(
            f"ours / baseline: CPU per token {_ratio(cpu, base_cpu)}, "
            f"RSS per stream {_ratio(rss, base_rss)}"
        )
        if name == "a" and cpu is not None and base_cpu is not None:
            lines.append(
                f"{verdict(cpu <= CPU_TARGET_US)}: CPU {cpu:.1f} <= {CPU_TARGET_US} us/token"
            )
            lines.append(f"{verdict(cpu < base_cpu)}: CPU {cpu:.1f} < baseline {base_cpu:.1f}")
    if name == "b" and ours:
        lines.append(
            f"{verdict(ours['completed'] == load['n'])}: "
            f"{ours['completed']} of {load['n']} streams completed"
        )
        rss, open_at = ours.get("rss_kib_per_stream"), ours.get("plateau_open")
        if rss is not None:
            note = "" if open_at == load["n"] else f" (only {open_at} open at once)"
            lines.append(
                f"{verdict(rss <= RSS_TARGET_KIB)}: RSS {rss:.1f} <= {RSS_TARGET_KIB} KiB{note}"
            )
    if name == "c" and ours and direct:
        for key, label in (("ttft_ms", "TTFT"), ("gap_ms", "inter-token gap")):
            added = _added(ours, direct, key)
            if added is None:
                lines.append(f"MISS: no {label} p99 to compare")
                continue
            base_added = _added(base, direct, key) if base else None
            lines.append(
                f"{verdict(added <= ADDED_LATENCY_TARGET_MS)}: {label} p99 added {added:+.1f} ms "
                f"(<= {ADDED_LATENCY_TARGET_MS}); baseline added "
                + ("-" if base_added is None else f"{base_added:+.1f} ms")
            )
    return lines


def _added(result: Result, direct: Result, key: str) -> float | None:
    relayed, alone = result[key]["p99"], direct[key]["p99"]
    return None if relayed is None or alone is None else float(relayed - alone)


def scenario_markdown(
    kind: str, label: str, load: dict[str, Any], results: dict[str, Result], custom: bool = False
) -> str:
    title = (
        f"### {label}: N={load['n']}, T={load['tokens']}, D={load['delay_ms']:g} ms, "
        f"ramp {load['rate']:g} streams/s"
    )
    table = "\n".join([HEADER, *(row(r) for r in results.values())])
    lines = checks(kind, load, results)
    if custom:
        lines.insert(0, "custom sizes: the targets below are for the standard sizes, not these")
    notes = "\n".join(f"- {line}" for line in lines)
    return f"{title}\n\n{table}\n\n{notes}\n"
