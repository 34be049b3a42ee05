"""``casewatch evaluate LOG``: detection quality per anomaly type.

On a labelled log, against the log's own labels (``--model``, or the bundled model). With
``--inject-rate R``, on any log: the first half trains a scorer (or ``--model`` is used), the
second half gets BINet-style anomalies in a share R of its cases, and the report says what to
expect on this process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from casewatch.cli._log_args import log_columns
from casewatch.cli._replay_args import add_replay_arguments, replay_model, replayed_traces
from casewatch.offline.evaluate import evaluate, report_lines
from casewatch.offline.evaluate_injected import evaluate_injected
from casewatch.offline.logs import read_log
from casewatch.scoring.scorer import Scorer


def configure(parser: argparse.ArgumentParser) -> None:
    add_replay_arguments(
        parser,
        model_help="ONNX scorer (default: the bundled reference model; with --inject-rate, one "
        "trained on the first half of the log)",
    )
    parser.add_argument(
        "--inject-rate", type=float, metavar="R",
        help="ignore the log's labels: inject anomalies into this share of the held-out half",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the injection")
    parser.epilog = (
        "With --inject-rate, --model must not have been trained on the second half of the "
        "cases: the figures would then be measured on training data."
    )


def run(args: argparse.Namespace) -> int:
    if args.inject_rate is not None:
        return _run_injected(args)
    traces = replayed_traces(args, "evaluate")
    if not traces or any(t.label is None for t in traces):
        raise SystemExit(
            "casewatch evaluate: the log has unlabelled cases (use --inject-rate R to inject)"
        )
    scorer = Scorer(replay_model(args), contract_path=args.contract)
    result = evaluate(traces, scorer, policy=args.policy)
    print("\n".join(report_lines(result, args.policy)))
    return 0


def _run_injected(args: argparse.Namespace) -> int:
    if not 0 <= args.inject_rate <= 1:
        raise SystemExit("casewatch evaluate: --inject-rate must be in [0, 1]")
    if args.skip_fraction:
        raise SystemExit(
            "casewatch evaluate: --skip-fraction does not apply with --inject-rate "
            "(the first half trains, the second half is held out)"
        )
    traces = read_log(args.log, columns=log_columns(args))
    with tempfile.TemporaryDirectory(prefix="casewatch-evaluate-") as scratch:
        outcome = evaluate_injected(
            traces,
            rate=args.inject_rate,
            seed=args.seed,
            policy=args.policy,
            workdir=Path(scratch),
            source=str(args.log),
            model=args.model,
            contract=args.contract,
        )
    injected = outcome.injected
    held_out = len(injected.traces)
    if outcome.trained is not None:
        t = outcome.trained
        origin = (
            f"trained on the first {outcome.training_cases} cases: threshold {t.threshold:.4f}, "
            f"{t.training_flag_rate:.1%} of training cases above it"
        )
    else:
        origin = f"model {args.model}"
    print(f"{args.log.name}: {origin}")
    print(
        f"held out {held_out} cases; injected one anomaly into {sum(injected.counts.values())} "
        f"of them (rate {args.inject_rate}, seed {args.seed})"
    )
    for kind, why in injected.missing.items():
        print(f"no {kind} anomalies: {why}", file=sys.stderr)
    print("\n".join(report_lines(outcome.evaluation, args.policy, injected.counts)))
    return 0
