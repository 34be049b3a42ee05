"""Arguments shared by the commands that replay a log through a scorer."""

from __future__ import annotations

import argparse
from pathlib import Path

from casewatch.cli._log_args import LOG_HELP, add_column_arguments, log_columns
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.train import split
from casewatch.settings import bundled_model_path, policy_alias

SCORE_POLICIES = ("close", "every-event")
# The daemon's own default (CASEWATCH_SCORE_POLICY) and the demo's: figures from `score` and
# `evaluate` then describe what `casewatch run` does out of the box.
DEFAULT_POLICY = "close"
POLICY_HELP = "score a case when it closes, or after every event (every_event also accepted)"
MODEL_HELP = "ONNX scorer (default: the reference model bundled with casewatch)"


def add_policy_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", type=policy_alias, choices=SCORE_POLICIES, default=DEFAULT_POLICY,
        help=POLICY_HELP,
    )  # fmt: skip


def add_replay_arguments(parser: argparse.ArgumentParser, *, model_help: str = MODEL_HELP) -> None:
    parser.add_argument("log", type=Path, metavar="LOG", help=LOG_HELP)
    parser.add_argument("--model", type=Path, metavar="PATH", help=model_help)
    parser.add_argument(
        "--contract", type=Path, metavar="PATH", help="contract file for models without one"
    )
    add_policy_argument(parser)
    parser.add_argument(
        "--skip-fraction", type=float, default=0.0, metavar="F",
        help="skip the first share of cases (those a model was trained on)",
    )  # fmt: skip
    add_column_arguments(parser)


def replay_model(args: argparse.Namespace) -> Path:
    """``--model``, or the bundled reference model when none is given."""
    model: Path | None = args.model
    return model if model is not None else bundled_model_path()


def replayed_traces(args: argparse.Namespace, command: str) -> list[Trace]:
    """The log's cases after ``--skip-fraction``."""
    if not 0 <= args.skip_fraction < 1:
        raise SystemExit(f"casewatch {command}: --skip-fraction must be in [0, 1)")
    traces = read_log(args.log, columns=log_columns(args))
    return split(traces, args.skip_fraction)[1] if args.skip_fraction else traces
