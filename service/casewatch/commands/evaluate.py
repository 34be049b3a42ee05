"""``casewatch evaluate LOG --model M``: detection quality on a labelled log, per anomaly type."""

from __future__ import annotations

import argparse

from casewatch._evaluate import evaluate, report_lines
from casewatch._scorer import Scorer
from casewatch.commands._replay_args import add_replay_arguments, replayed_traces


def configure(parser: argparse.ArgumentParser) -> None:
    add_replay_arguments(parser, policy="every-event")


def run(args: argparse.Namespace) -> int:
    traces = replayed_traces(args, "evaluate")
    if not traces or any(t.label is None for t in traces):
        raise SystemExit("casewatch evaluate: the log has unlabelled cases")
    scorer = Scorer(args.model, contract_path=args.contract)
    result = evaluate(traces, scorer, policy=args.policy)
    print("\n".join(report_lines(result, args.policy)))
    return 0
