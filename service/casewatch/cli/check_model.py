"""``casewatch check-model [M]``: what a model reads and returns, and whether casewatch can use it.

The summary names the parts of the contract a person checks before deploying a model; ``--json``
prints the whole contract. The last line is the verdict: ``OK: ...`` after the model has loaded
and scored a short case under both policies, or ``INVALID: <reason>`` on stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from casewatch.errors import CasewatchError, ModelError
from casewatch.events import StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.offline.replay import Policy, replay
from casewatch.scoring.contract import Contract
from casewatch.scoring.scorer import Scorer
from casewatch.scoring.training_summary import TrainingSummary
from casewatch.settings import bundled_model_path, env_name

_SHOWN_ACTIVITIES = 6
_POLICIES: tuple[Policy, ...] = ("close", "every-event")
# Long enough to reach a trigram model's full context, short enough to stay instant.
_PROBE_EVENTS = 3


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, nargs="?", metavar="MODEL",
        help="ONNX scorer (default: $CASEWATCH_MODEL_PATH, else the bundled reference model)",
    )  # fmt: skip
    parser.add_argument(
        "--contract", type=Path, metavar="PATH", help="contract file for models without one"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the full contract as JSON instead of a summary"
    )


def _probe(scorer: Scorer) -> None:
    """Score one short case of the model's own activities under every policy."""
    names = scorer.activities[:_PROBE_EVENTS]
    events = [StreamingEvent("probe", name, timestamp=float(i)) for i, name in enumerate(names)]
    trace = Trace("probe", events, label=None, anomaly_type=None, anomalous_positions=())
    for policy in _POLICIES:
        scores = replay([trace], scorer, policy=policy).scores
        if not np.isfinite(scores).all():
            raise ModelError(f"{scorer.path}: the score of a short case is {scores[0]} ({policy})")


def summary_lines(contract: Contract, sha256: str) -> list[str]:
    """The contract in a few lines: identity, vocabulary, inputs, outputs, threshold."""
    activities = contract.activities
    shown = ", ".join(activities[:_SHOWN_ACTIVITIES])
    hidden = len(activities) - _SHOWN_ACTIVITIES
    more = f", ... (+{hidden})" if hidden > 0 else ""
    threshold = f"{contract.threshold:.4f}"
    if contract.threshold_method:
        threshold += f" ({contract.threshold_method})"
    if contract.false_alarm_rate is not None:
        threshold += f", false-alarm rate {contract.false_alarm_rate:g}"
    if contract.expected_flagged_share is not None:
        threshold += f", flags {contract.expected_flagged_share:.1%} of the training cases"
    direction = "higher" if contract.score.higher_is_anomalous else "lower"
    attributes = [a.name for a in contract.event_attributes]
    lines = [
        f"model       {contract.name} {contract.version}  sha256 {sha256[:16]}",
        f"activities  {len(activities)}: {shown}{more}",
        f"sequence    last {contract.sequence_length} events of a case",
        f"attributes  event: {', '.join(attributes) or '(none)'}; "
        f"case: {', '.join(a.name for a in contract.case_attributes) or '(none)'}",
    ]
    lines += [f"input       {b.name}: {', '.join(b.features)}" for b in contract.inputs]
    lines += [
        f"score       {contract.score.name} ({direction} is more anomalous)",
        f"residuals   {contract.residuals or '(none: no blamed activity)'}",
        f"explanation {_explanation(contract)}",
        f"incremental {_incremental(contract)}",
        f"threshold   {threshold}",
    ]
    if contract.description:
        lines.append(f"about       {contract.description}")
    return lines


def drift_line(summary: TrainingSummary | None) -> str:
    """Whether the daemon's drift metrics have a training baseline to compare with."""
    if summary is None:
        return "drift       no training summary: no score PSI or expected shares in the metrics"
    return (
        f"drift       training summary of {summary.cases} cases, {summary.events} events, "
        f"{len(summary.score_bins.shares)} score bins"
    )


def _explanation(contract: Contract) -> str:
    if contract.explanation is None:
        return "(none: evaluations name no expected activity)"
    return ", ".join(name for _, name in contract.explanation.outputs())


def _incremental(contract: Contract) -> str:
    if contract.incremental is None:
        return "(none: every-event scoring runs the whole ring)"
    return f"window of the last {contract.incremental.window} events on every event"


def verdict(contract: Contract) -> str:
    method = f" ({contract.threshold_method})" if contract.threshold_method else ""
    return (
        f"OK: {contract.name} {contract.version}, {len(contract.activities)} activities, "
        f"threshold {contract.threshold:.4f}{method}, scores {' and '.join(_POLICIES)}"
    )


def _default_model() -> Path:
    """The model the daemon would load here: its setting when set, else the bundled one."""
    configured = os.environ.get(env_name("model_path"), "").strip()
    return Path(configured) if configured else bundled_model_path()


def run(args: argparse.Namespace) -> int:
    model: Path = args.model if args.model is not None else _default_model()
    try:
        scorer = Scorer(model, contract_path=args.contract)
        _probe(scorer)
    except CasewatchError as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(json.loads(scorer.contract.to_json()), indent=2, ensure_ascii=False))
    else:
        print("\n".join(summary_lines(scorer.contract, scorer.identity.sha256)))
        print(drift_line(scorer.training_summary))
    print(verdict(scorer.contract))
    return 0
