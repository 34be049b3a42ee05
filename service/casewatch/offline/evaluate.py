"""Detection quality of a scorer on a labelled log, measured through the daemon's evaluator.

Besides case-level precision/recall/F1 and PR-AUC:

- recall per anomaly type: share of the anomalous cases of each type whose final evaluation is
  flagged;
- localisation accuracy: among flagged anomalous cases whose blamed events are known, the share
  whose top residual transition (largest per-transition residual of the final evaluation) is the
  activity of one of the blamed events;
- detection delay (every-event policy only): for anomalous cases with known blamed events that
  some evaluation flags, the number of events between the first blamed event and the event whose
  evaluation first flagged the case (0 = flagged on the anomalous event itself; negative when the
  case was already flagged before it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from casewatch.events import StreamingEvaluation
from casewatch.offline.logs import Trace
from casewatch.offline.quality import CaseQuality, recall_by_type
from casewatch.offline.replay import OfflineResult, Policy, replay
from casewatch.scoring.scorer import Scorer

__all__ = ["Evaluation", "evaluate", "report_lines"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    quality: CaseQuality
    recall_by_type: dict[str, float]
    localised: int
    localisable: int
    delays: list[int]  # empty unless scored on every event

    @property
    def localisation(self) -> float:
        return self.localised / self.localisable if self.localisable else float("nan")

    def delay_quantile(self, q: float) -> float:
        return float(np.quantile(self.delays, q)) if self.delays else float("nan")


class _FirstFlags:
    """Keeps, per case, the event count at the first flagged evaluation and the final one."""

    def __init__(self) -> None:
        self.first_flagged: dict[str, int] = {}
        self.final: dict[str, StreamingEvaluation] = {}

    def __call__(self, evaluation: StreamingEvaluation) -> None:
        if evaluation.anomalous and evaluation.case_id not in self.first_flagged:
            self.first_flagged[evaluation.case_id] = evaluation.n_events
        if evaluation.closed:
            self.final[evaluation.case_id] = evaluation


def evaluate(traces: Sequence[Trace], scorer: Scorer, *, policy: Policy = "close") -> Evaluation:
    if not traces or any(t.label is None for t in traces):
        raise ValueError("every case needs a label to evaluate against")
    flags = _FirstFlags()
    result: OfflineResult = replay(traces, scorer, policy=policy, sink=flags)
    assert result.quality is not None
    localised = localisable = 0
    delays: list[int] = []
    for trace, flagged in zip(traces, result.flagged.tolist(), strict=True):
        if not trace.label or not trace.anomalous_positions:
            continue
        blamed = trace.anomalous_positions
        final = flags.final[trace.case_id]
        if flagged and final.top_transitions:
            localisable += 1
            top = final.top_transitions[0].transition
            localised += any(trace.events[i].name == top for i in blamed)
        first = flags.first_flagged.get(trace.case_id)
        if policy == "every-event" and first is not None:
            delays.append(first - 1 - blamed[0])
    return Evaluation(
        quality=result.quality,
        recall_by_type=recall_by_type([t.anomaly_type for t in traces], result.flagged.tolist()),
        localised=localised,
        localisable=localisable,
        delays=delays,
    )


def report_lines(
    result: Evaluation, policy: Policy, counts: dict[str, int] | None = None
) -> list[str]:
    """The report; ``counts`` (cases per anomaly type) adds them to the per-type recall."""
    q = result.quality
    normal = q.n_cases - q.n_anomalous
    lines = [
        f"cases {q.n_cases}, anomalous {q.n_anomalous} ({_share(q.n_anomalous, q.n_cases)}), "
        f"flagged {q.n_flagged} ({_share(q.n_flagged, q.n_cases)} of cases; "
        f"{_share(q.fp, normal)} of normal cases)",
        f"precision {q.precision:.3f}  recall {q.recall:.3f}  F1 {q.f1:.3f}  PR-AUC {q.pr_auc:.3f}",
        "recall by anomaly type:",
        *(
            f"  {kind:<14} {recall:.3f}" + (f"  ({counts[kind]} cases)" if counts else "")
            for kind, recall in result.recall_by_type.items()
        ),
        f"localisation {result.localisation:.3f} ({result.localised}/{result.localisable} flagged "
        "anomalous cases whose top residual transition is a blamed event's activity)",
    ]
    if not q.n_anomalous:
        # Nothing to find: the flagged share is the false-alarm rate, and the rest is undefined.
        return lines[:1]
    if policy == "every-event":
        lines.append(
            f"detection delay (events after the first blamed event, {len(result.delays)} detected "
            f"cases): median {result.delay_quantile(0.5):.1f}  p90 {result.delay_quantile(0.9):.1f}"
        )
    else:
        lines.append("detection delay: needs --policy every-event")
    return lines


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"
