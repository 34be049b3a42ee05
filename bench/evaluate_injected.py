"""What ``casewatch evaluate LOG --inject-rate R`` reports on shared logs, two ways per log:

- ``stripped``: labels dropped, the log's own anomalous cases kept (as a user's log would be,
  anomalies unknown); they count as normal, so precision is a lower bound;
- ``clean``: the log's anomalous cases removed first, so the only anomalies are the injected ones
  (on a real log, the flagged share of a clean log is what a process owner sees).

    python bench/evaluate_injected.py ../shared/data/eventlogs/*.csv.gz [--rate 0.05] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from casewatch.offline.evaluate_injected import evaluate_injected
from casewatch.offline.inject import KINDS
from casewatch.offline.logs import read_log
from casewatch.offline.logs.trace import Trace


def variants(traces: list[Trace]) -> dict[str, list[Trace]]:
    return {"stripped": traces, "clean": [t for t in traces if t.label is not True]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("stripped", "clean"), help="one of the two ways")
    args = parser.parse_args()
    short = {k: k[:5] for k in KINDS}
    print(
        f"| log | way | held out | injected | flagged share | precision | recall | F1 | PR-AUC | "
        f"{' | '.join(short.values())} |"
    )
    print("|---" * (9 + len(KINDS)) + "|")
    for log in args.logs:
        for way, traces in variants(read_log(log)).items():
            if args.only and way != args.only:
                continue
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as scratch:
                outcome = evaluate_injected(
                    traces, rate=args.rate, seed=args.seed, policy="close",
                    workdir=Path(scratch), source=str(log),
                )  # fmt: skip
            q = outcome.evaluation.quality
            by_type = outcome.evaluation.recall_by_type
            recalls = " | ".join(f"{by_type[k]:.2f}" if k in by_type else "-" for k in KINDS)
            name = log.name.removesuffix(".csv.gz")
            print(
                f"| {name} | {way} | {q.n_cases} | {q.n_anomalous} | "
                f"{q.n_flagged / q.n_cases:.1%} | {q.precision:.3f} | {q.recall:.3f} | "
                f"{q.f1:.3f} | {q.pr_auc:.3f} | {recalls} |",
                flush=True,
            )
            print(f"<!-- {name} {way}: {time.perf_counter() - started:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
