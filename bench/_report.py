"""The end-to-end benchmark's results and how they are printed: a table, then ratios.

Every casewatch figure is read against a baseline measured in the same run on the same broker,
because the machine is shared and absolute rates move with its load: scoring on close against
the read ceiling (it produces one record per case), scoring on every event against the pipe
ceiling (one record per event), long cases against short ones, two workers against one, and
casewatch's p99 latency against the pipe ceiling's paced at the same rate (what the broker, the
feeder, the collector and the machine alone cost).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from _synthetic import REFERENCE_MODEL
from casewatch.scoring.scorer import Scorer
from memory import measure as measure_memory

LATENCY_TARGET_MS = 25.0
_CEILING_OF = {"close": "ceiling read", "every-event": "ceiling pipe"}


@dataclass
class Result:
    name: str
    events: int
    rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    # p99 of the pipe ceiling paced at the same rate: the broker's and the machine's share.
    floor_p99_ms: float | None = None
    rss: int = 0
    cpu: float = 0.0  # contender CPU seconds during the run
    # Cores the contender and everything else (broker, feeder, collector) kept busy meanwhile.
    own_cores: float | None = None
    other_cores: float | None = None
    notes: list[str] = field(default_factory=list)


def _ceiling(name: str) -> str | None:
    if not name.startswith(("casewatch", "naive")):
        return None
    policy = name.split()[1]
    return _CEILING_OF.get(policy)


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def report(results: list[Result]) -> None:
    rates = {r.name: r.rate for r in results}
    print(
        f"\n{'contender':<32} {'events':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'peak RSS MB':>11} {'ev/CPU-s':>9} {'vs naive':>9} {'vs ceiling':>10}  notes"
    )
    for r in results:
        policy = r.name.split()[1] if r.name.startswith(("casewatch", "naive")) else ""
        naive_rate = rates.get(f"naive {policy}", 0.0)
        vs_naive = (
            f"{r.rate / naive_rate:.1f}x" if naive_rate and r.name.startswith("casewatch") else ""
        )
        ceiling = _ceiling(r.name)
        vs_ceiling = f"{r.rate / rates[ceiling]:.2f}" if ceiling and rates.get(ceiling) else ""
        per_cpu = f"{r.events / r.cpu:,.0f}" if r.cpu > 0 else "-"
        print(
            f"{r.name:<32} {r.events:>9,} {r.rate:>10,.0f} {_ms(r.p50_ms):>8} {_ms(r.p99_ms):>8} "
            f"{r.rss / 2**20:>11.0f} {per_cpu:>9} {vs_naive:>9} {vs_ceiling:>10}  "
            f"{'; '.join(r.notes)}"
        )
    print("\nratios against baselines of this run:")
    for line in _ratio_lines({r.name: r for r in results}):
        print(f"  {line}")


def _ratio_lines(by_name: dict[str, Result]) -> list[str]:
    lines = []
    for policy, ceiling in _CEILING_OF.items():
        ours, top = by_name.get(f"casewatch {policy}"), by_name.get(ceiling)
        if ours and top and top.rate:
            lines.append(
                f"casewatch {policy} / {ceiling}: {ours.rate / top.rate:.2f} "
                f"({ours.rate:,.0f} / {top.rate:,.0f} events/s)"
            )
    for policy, ceiling in _CEILING_OF.items():
        ours, top = by_name.get(f"casewatch {policy}"), by_name.get(ceiling)
        if ours and top and ours.cpu > 0 and top.cpu > 0:
            # What the ratio would be if each had a core to itself: its own CPU per event.
            own, theirs = ours.cpu / ours.events * 1e6, top.cpu / top.events * 1e6
            lines.append(
                f"casewatch {policy} / {ceiling} per CPU-second: {theirs / own:.2f} "
                f"({own:.1f} against {theirs:.1f} us of CPU per event)"
            )
    for policy in _CEILING_OF:
        ours = by_name.get(f"casewatch {policy}")
        if ours and ours.p99_ms is not None:
            verdict = "within" if ours.p99_ms <= LATENCY_TARGET_MS else "over"
            floor = (
                f"; the pipe ceiling at the same rate: {ours.floor_p99_ms:.1f} ms"
                if ours.floor_p99_ms is not None
                else ""
            )
            lines.append(
                f"casewatch {policy} p99 event-to-evaluation at half its max rate: "
                f"{ours.p99_ms:.1f} ms ({verdict} {LATENCY_TARGET_MS:g} ms{floor})"
            )
    short = by_name.get("casewatch close")
    walks = [name for name in by_name if name.startswith("casewatch close walks ")]
    for name, result in by_name.items():
        # Long walks against the shortest walks of the run, workers against one worker.
        base = short if name not in walks or name == walks[0] else by_name[walks[0]]
        if base and base.rate and name.startswith("casewatch close ") and result is not base:
            lines.append(
                f"{name} / {base.name}: {result.rate / base.rate:.2f} "
                f"({result.rate:,.0f} / {base.rate:,.0f} events/s)"
            )
    workers = [r for n, r in by_name.items() if n.startswith("casewatch close workers=")]
    if short and workers and short.own_cores and short.other_cores is not None:
        # Every process's CPU per event stays the same at a higher rate, so the cores the whole
        # one-worker run kept busy bound what more workers can reach on this machine.
        cores = os.cpu_count() or 1
        busy = short.own_cores + short.other_cores
        lines.append(
            f"one worker's run kept {busy:.2f} cores busy (casewatch {short.own_cores:.2f}, "
            f"broker, feeder and collector {short.other_cores:.2f}): on {cores} cores, workers "
            f"can reach at most {cores / busy:.2f}x its rate"
        )
    return lines


def memory_line(cases: int) -> str:
    """Bytes per open case held by the evaluator at ``cases`` open, 5- and 200-event cases."""
    scorer = Scorer(REFERENCE_MODEL)
    figures = []
    for length in (5, 200):
        traced, _, _ = measure_memory(scorer, cases, length)
        figures.append(f"{traced:,.0f} B ({length}-event cases)")
    return f"  memory per open case at {cases:,} open: " + ", ".join(figures)
