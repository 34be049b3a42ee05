"""What the metrics read off a batch of published evaluations, as columns.

The loop publishes records straight from the scored batch's columns
(``casewatch.scoring.scored``), so the metrics read those columns too rather than one object per
evaluation. ``Verdicts.of`` reads the same columns off evaluation records, for callers that hold
records (and as the definition each column must match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from casewatch.events import ModelIdentity, StreamingEvaluation


@dataclass(frozen=True, slots=True)
class Verdicts:
    """One scored batch: a value per evaluation, in publishing order."""

    model: ModelIdentity
    threshold: float
    triggers: list[str]
    trace_scores: npt.NDArray[np.float64]  # as published (rounded)
    anomalous: npt.NDArray[np.bool_]
    last_event_at: npt.NDArray[np.float64]  # NaN: the case has no event time
    # The activity of each anomalous evaluation's top transition (None: none blamed).
    blamed: list[str | None]

    def __len__(self) -> int:
        return len(self.triggers)

    @staticmethod
    def concat(parts: Sequence[Verdicts]) -> Verdicts | None:
        """The batches one after the other (one loop iteration's); None for none."""
        if len(parts) <= 1:
            return parts[0] if parts else None
        last = parts[-1]
        return Verdicts(
            model=last.model,
            threshold=last.threshold,
            triggers=[t for p in parts for t in p.triggers],
            trace_scores=np.concatenate([p.trace_scores for p in parts]),
            anomalous=np.concatenate([p.anomalous for p in parts]),
            last_event_at=np.concatenate([p.last_event_at for p in parts]),
            blamed=[b for p in parts for b in p.blamed],
        )

    @staticmethod
    def of(evaluations: Sequence[StreamingEvaluation]) -> Verdicts | None:
        """The columns of ``evaluations`` (one model's); None for none."""
        if not evaluations:
            return None
        last = evaluations[-1]
        n = len(evaluations)
        return Verdicts(
            model=last.model,
            threshold=last.threshold,
            triggers=[e.trigger for e in evaluations],
            trace_scores=np.fromiter((e.trace_score for e in evaluations), np.float64, n),
            anomalous=np.fromiter((e.anomalous for e in evaluations), np.bool_, n),
            last_event_at=np.fromiter(
                (np.nan if e.last_event_at is None else e.last_event_at for e in evaluations),
                np.float64,
                n,
            ),
            blamed=[
                e.top_transitions[0].transition if e.top_transitions else None
                for e in evaluations
                if e.anomalous
            ],
        )


__all__ = ["Verdicts"]
