"""Arguments shared by the commands that replay a log through a scorer."""

from __future__ import annotations

import argparse
from pathlib import Path

from casewatch.cli._log_args import LOG_HELP, add_column_arguments, log_columns
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.train import split

SCORE_POLICIES = ("close", "every-event")
POLICY_HELP = (
    "score a case when it closes, or after every event (every_event is read as every-event)"
)


def score_policy(value: str) -> str:
    """A ``--policy`` value; the underscore spelling ``every_event`` is read as ``every-event``."""
    return "every-event" if value == "every_event" else value


def add_replay_arguments(
    parser: argparse.ArgumentParser, *, policy: str, model_required: bool = True
) -> None:
    parser.add_argument("log", type=Path, help=LOG_HELP)
    parser.add_argument("--model", type=Path, required=model_required, help="ONNX scorer")
    parser.add_argument("--contract", type=Path, help="contract file for models without one")
    parser.add_argument(
        "--policy", type=score_policy, choices=SCORE_POLICIES, default=policy, help=POLICY_HELP
    )
    parser.add_argument(
        "--skip-fraction", type=float, default=0.0,
        help="skip the first share of cases (those a model was trained on)",
    )  # fmt: skip
    add_column_arguments(parser)


def replayed_traces(args: argparse.Namespace, command: str) -> list[Trace]:
    """The log's cases after ``--skip-fraction``."""
    if not 0 <= args.skip_fraction < 1:
        raise SystemExit(f"casewatch {command}: --skip-fraction must be in [0, 1)")
    traces = read_log(args.log, columns=log_columns(args))
    return split(traces, args.skip_fraction)[1] if args.skip_fraction else traces
