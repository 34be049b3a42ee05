"""``casewatch score LOG --model M``: offline replay through the daemon's evaluator."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO

import msgspec

from casewatch._events import StreamingEvaluation
from casewatch._logs import read_log
from casewatch._offline import replay
from casewatch._progress import progress_bar
from casewatch._scorer import Scorer
from casewatch._train import split


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, help="event log: .csv[.gz], .xes[.gz] or .jsonl[.gz]")
    parser.add_argument("--model", type=Path, required=True, help="ONNX scorer")
    parser.add_argument("--contract", type=Path, help="contract file for models without one")
    parser.add_argument("--policy", choices=("close", "every-event"), default="close")
    parser.add_argument(
        "--skip-fraction", type=float, default=0.0,
        help="skip the first share of cases (those a model was trained on)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write one JSON evaluation per line here")


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.skip_fraction < 1:
        raise SystemExit("casewatch score: --skip-fraction must be in [0, 1)")
    scorer = Scorer(args.model, contract_path=args.contract)
    traces = read_log(args.log)
    if args.skip_fraction:
        traces = split(traces, args.skip_fraction)[1]
    encoder = msgspec.json.Encoder()
    out: IO[bytes] | None = args.out.open("wb") if args.out else None

    def write(evaluation: StreamingEvaluation) -> None:
        if out is not None:
            out.write(encoder.encode(evaluation) + b"\n")

    started = time.perf_counter()
    total = sum(len(t.events) for t in traces)
    try:
        with progress_bar(f"scoring {args.log.name}", total) as advance:
            result = replay(traces, scorer, policy=args.policy, sink=write, progress=advance)
    finally:
        if out is not None:
            out.close()
    elapsed = time.perf_counter() - started
    flagged = int(result.flagged.sum())
    print(
        f"{len(traces)} cases, {total} events, {result.evaluations} evaluations, "
        f"{flagged} flagged anomalous ({total / max(elapsed, 1e-9):,.0f} events/s)"
    )
    if result.quality is not None:
        q = result.quality
        print(
            f"precision {q.precision:.3f}  recall {q.recall:.3f}  F1 {q.f1:.3f}  "
            f"PR-AUC {q.pr_auc:.3f}  ({q.n_anomalous} anomalous cases)"
        )
    else:
        print("no labels in the log: quality not measured", file=sys.stderr)
    return 0
