"""``casewatch train LOG --out models/NAME.onnx``: fit, calibrate without labels, export."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from casewatch.cli._log_args import LOG_HELP, add_column_arguments, log_columns
from casewatch.offline.logs import read_log
from casewatch.offline.progress import progress_bar
from casewatch.offline.threshold import DEFAULT_FALSE_ALARM_RATE, METHODS
from casewatch.offline.train import TrainOptions, train


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, metavar="LOG", help=LOG_HELP)
    add_column_arguments(parser)
    parser.add_argument(
        "--out", type=Path, required=True, metavar="PATH", help="ONNX file to write"
    )
    parser.add_argument("--name", help="model name (default: the output file's stem)")
    parser.add_argument("--version", help="model version (default: today's date)")
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, metavar="F",
        help="fit on the first share of cases; the rest is scored for the model card",
    )  # fmt: skip
    parser.add_argument("--order", type=int, default=3, choices=(2, 3, 4), help="n-gram order")
    parser.add_argument(
        "--sequence-length", type=int, default=32, metavar="K", help="events kept per case"
    )
    parser.add_argument(
        "--threshold-method", choices=sorted(METHODS), default="mode",
        help="how the threshold is chosen from the training scores (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--false-alarm-rate", type=float, default=DEFAULT_FALSE_ALARM_RATE, metavar="R",
        help="share of normal cases the threshold may flag when the log shows no separate "
        "anomalous mode; lower means fewer alerts and less recall (default: %(default)s)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not 0 < args.train_fraction <= 1:
        raise SystemExit("casewatch train: --train-fraction must be in (0, 1]")
    if not 0 < args.false_alarm_rate < 0.5:
        raise SystemExit("casewatch train: --false-alarm-rate must be in (0, 0.5)")
    with progress_bar(f"reading {args.log.name}", None) as advance:
        traces = read_log(args.log, progress=advance, columns=log_columns(args))
    options = TrainOptions(
        name=args.name or args.out.stem,
        version=args.version or dt.datetime.now(dt.UTC).strftime("%Y.%m.%d"),
        order=args.order,
        sequence_length=args.sequence_length,
        threshold_method=args.threshold_method,
        false_alarm_rate=args.false_alarm_rate,
        train_fraction=args.train_fraction,
    )
    report = train(traces, args.out, options, source=str(args.log))
    print(
        f"wrote {report.path} and {report.card}: trained on {report.training_cases} cases, "
        f"threshold {report.threshold:.4f} ({options.threshold_method}), "
        f"{report.training_flag_rate:.1%} of training cases above it"
    )
    if report.later_flag_rate is not None:
        print(
            f"fitted on the earlier half of the training cases, the recipe flags "
            f"{report.later_flag_rate:.1%} of the later half"
        )
    if report.held_out is not None and report.held_out.quality is not None:
        q = report.held_out.quality
        print(
            f"held-out {q.n_cases} cases: precision {q.precision:.3f} recall {q.recall:.3f} "
            f"F1 {q.f1:.3f} PR-AUC {q.pr_auc:.3f}"
        )
    return 0
