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
from collections.abc import Sequence
from pathlib import Path

from casewatch.cli._log_args import log_columns
from casewatch.cli._replay_args import add_replay_arguments, replay_model, replayed_traces
from casewatch.offline.evaluate import evaluate, report_lines
from casewatch.offline.evaluate_injected import evaluate_injected
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.report import collect, render
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
    parser.add_argument(
        "--report", type=Path, metavar="HTML",
        help="also write the evaluation as one self-contained HTML page (charts, flagged cases)",
    )  # fmt: skip
    parser.epilog = (
        "With --inject-rate, --model must not have been trained on the second half of the "
        "cases: the figures would then be measured on training data."
    )


def run(args: argparse.Namespace) -> int:
    # Checked first: a report that cannot be written must not cost a whole evaluation.
    if args.report is not None and not args.report.parent.is_dir():
        raise SystemExit(f"casewatch evaluate: {args.report.parent} is not a directory")
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
    if args.report is not None:
        skipped = (
            f" after the first {args.skip_fraction:.0%} of cases" if args.skip_fraction else ""
        )
        notes = [
            f"{len(traces)} cases of {args.log.name}{skipped} against the log's labels, scored "
            f"by {replay_model(args).name} ({args.policy}); held-out only if the model was not "
            "trained on them."
        ]
        _write_report(args, traces, scorer, notes)
    return 0


def _write_report(
    args: argparse.Namespace, traces: Sequence[Trace], scorer: Scorer, notes: list[str]
) -> None:
    data = collect(
        traces, scorer, policy=args.policy, title=f"casewatch: {args.log.name}", notes=notes
    )
    try:
        args.report.write_text(render(data), encoding="utf-8")
    except OSError as exc:
        raise SystemExit(
            f"casewatch evaluate: cannot write {args.report}: {exc.strerror}"
        ) from None
    print(f"report written to {args.report}")


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
        _evaluate_injected(args, traces, Path(scratch))
    return 0


def _evaluate_injected(args: argparse.Namespace, traces: list[Trace], scratch: Path) -> None:
    outcome = evaluate_injected(
        traces,
        rate=args.inject_rate,
        seed=args.seed,
        policy=args.policy,
        workdir=scratch,
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
    if args.report is not None:
        model = outcome.trained.path if outcome.trained is not None else args.model
        notes = [
            origin + ".",
            f"Held-out: the last {held_out} cases, none used for training; one anomaly injected "
            f"into {sum(injected.counts.values())} of them (rate {args.inject_rate}, "
            f"seed {args.seed}); {args.policy} policy.",
        ]
        _write_report(args, injected.traces, Scorer(model, contract_path=args.contract), notes)
