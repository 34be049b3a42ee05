"""``casewatch score LOG [--model M]``: offline replay through the daemon's evaluator."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO

import msgspec

from casewatch.cli._replay_args import add_replay_arguments, replay_model, replayed_traces
from casewatch.events import StreamingEvaluation
from casewatch.offline.progress import progress_bar
from casewatch.offline.replay import replay
from casewatch.scoring.scorer import Scorer


def configure(parser: argparse.ArgumentParser) -> None:
    add_replay_arguments(parser)
    parser.add_argument(
        "--out", type=Path, metavar="PATH", help="write one JSON evaluation per line here"
    )


def run(args: argparse.Namespace) -> int:
    scorer = Scorer(replay_model(args), contract_path=args.contract)
    traces = replayed_traces(args, "score")
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
