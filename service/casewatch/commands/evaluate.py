"""``casewatch evaluate LOG --model M``: detection quality on a labelled log, per anomaly type."""

from __future__ import annotations

import argparse
from pathlib import Path

from casewatch._evaluate import evaluate, report_lines
from casewatch._logs import read_log
from casewatch._scorer import Scorer
from casewatch._train import split


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, help="labelled event log: .csv[.gz] (BINet style)")
    parser.add_argument("--model", type=Path, required=True, help="ONNX scorer")
    parser.add_argument("--contract", type=Path, help="contract file for models without one")
    parser.add_argument("--policy", choices=("close", "every-event"), default="every-event")
    parser.add_argument(
        "--skip-fraction", type=float, default=0.0,
        help="skip the first share of cases (those a model was trained on)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.skip_fraction < 1:
        raise SystemExit("casewatch evaluate: --skip-fraction must be in [0, 1)")
    traces = read_log(args.log)
    if args.skip_fraction:
        traces = split(traces, args.skip_fraction)[1]
    if not traces or any(t.label is None for t in traces):
        raise SystemExit("casewatch evaluate: the log has unlabelled cases")
    scorer = Scorer(args.model, contract_path=args.contract)
    result = evaluate(traces, scorer, policy=args.policy)
    print("\n".join(report_lines(result, args.policy)))
    return 0
