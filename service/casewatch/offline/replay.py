"""Replaying a log through the StreamingEvaluator, as the daemon would see it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from casewatch.events import StreamingEvaluation, StreamingEvent
from casewatch.offline.logs import Trace, interleave
from casewatch.offline.quality import CaseQuality, case_quality
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer

Policy = Literal["close", "every-event"]
BATCH = 1000


@dataclass(frozen=True, slots=True)
class OfflineResult:
    """Final (closed) evaluation per case, in log order, and quality when labels exist."""

    case_ids: list[str]
    scores: npt.NDArray[np.float64]
    flagged: npt.NDArray[np.bool_]
    evaluations: int
    quality: CaseQuality | None


def _batches(events: Iterator[StreamingEvent], size: int) -> Iterator[list[StreamingEvent]]:
    batch: list[StreamingEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def replay(
    traces: Sequence[Trace],
    scorer: Scorer,
    *,
    policy: Policy = "close",
    sink: Callable[[StreamingEvaluation], None] | None = None,
    progress: Callable[[int], None] | None = None,
    open_cases: int = 64,
) -> OfflineResult:
    """Feed the traces (interleaved, close marker on each last event) in batches."""
    evaluator = StreamingEvaluator(scorer, score_on_every_event=policy == "every-event")
    final: dict[str, StreamingEvaluation] = {}
    count = 0
    events = interleave(traces, open_cases=open_cases, close_marker=True)
    for batch in _batches(events, BATCH):
        for evaluation in evaluator.on_events(batch):
            count += 1
            if evaluation.closed:
                final[evaluation.case_id] = evaluation
            if sink is not None:
                sink(evaluation)
        if progress is not None:
            progress(len(batch))
    case_ids = [t.case_id for t in traces]
    scores = np.array([final[c].trace_score for c in case_ids], dtype=np.float64)
    flagged = np.array([final[c].anomalous for c in case_ids], dtype=np.bool_)
    labels = [t.label for t in traces]
    quality = None
    if traces and all(label is not None for label in labels):
        quality = case_quality([bool(label) for label in labels], scores.tolist(), flagged.tolist())
    return OfflineResult(case_ids, scores, flagged, count, quality)
