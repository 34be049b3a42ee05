"""Turning one batch of scores into evaluation records."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from casewatch._events import (
    ModelIdentity,
    Source,
    StreamingEvaluation,
    TransitionResidual,
)
from casewatch._features import Snapshot
from casewatch._scorer import ScoreBatch


def evaluation_id(
    model_sha256: str,
    case_id: str,
    n_events: int,
    trigger: str,
    partition: int,
    first_offset: int,
    last_offset: int,
    first_time: float | None,
    last_time: float | None,
) -> str:
    """Deterministic id: the same input scored by the same model gives the same id."""
    text = (
        f"{model_sha256}|{case_id}|{n_events}|{trigger}|{partition}|{first_offset}|"
        f"{last_offset}|{first_time}|{last_time}"
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _time(value: float) -> float | None:
    return None if math.isnan(value) else value


class RecordBuilder:
    """Builds StreamingEvaluation records; label arrays and model identity resolved once."""

    def __init__(self, activities: list[str], identity: ModelIdentity, *, top_k: int = 3) -> None:
        self._labels = np.asarray(activities, dtype=object)
        self._identity = identity
        self._top_k = max(1, min(top_k, len(activities)))

    def build(
        self,
        snap: Snapshot,
        batch: ScoreBatch,
        *,
        threshold: float,
        source_topic: str | None,
        now: float,
    ) -> list[StreamingEvaluation]:
        residuals = np.round(batch.residuals.astype(np.float64), 6)
        k = self._top_k
        top = np.argpartition(-residuals, k - 1, axis=1)[:, :k]
        top_values = np.take_along_axis(residuals, top, axis=1)
        order = np.argsort(-top_values, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        top_values = np.take_along_axis(top_values, order, axis=1)
        case_of, transition = np.nonzero(residuals > 0)
        bounds = np.searchsorted(case_of, np.arange(len(snap) + 1)).tolist()
        nonzero_labels = self._labels[transition].tolist()
        nonzero_values = residuals[case_of, transition].tolist()
        scores = batch.scores.tolist()
        identity = self._identity
        records: list[StreamingEvaluation] = []
        for i, case_id in enumerate(snap.case_ids):
            score = scores[i]
            n_events = int(snap.n_events[i])
            trigger = snap.triggers[i]
            partition = int(snap.partition[i])
            first_offset = int(snap.first_offset[i])
            last_offset = int(snap.last_offset[i])
            first_time = _time(float(snap.first_time[i]))
            last_time = _time(float(snap.last_time[i]))
            lo, hi = bounds[i], bounds[i + 1]
            records.append(
                StreamingEvaluation(
                    evaluation_id=evaluation_id(
                        identity.sha256,
                        case_id,
                        n_events,
                        trigger,
                        partition,
                        first_offset,
                        last_offset,
                        first_time,
                        last_time,
                    ),
                    case_id=case_id,
                    n_events=n_events,
                    trace_score=round(score, 6),
                    threshold=threshold,
                    anomalous=score > threshold,
                    per_transition_residuals=dict(
                        zip(nonzero_labels[lo:hi], nonzero_values[lo:hi], strict=True)
                    ),
                    top_transitions=[
                        TransitionResidual(str(self._labels[t]), float(v))
                        for t, v in zip(top[i].tolist(), top_values[i].tolist(), strict=True)
                        if v > 0
                    ],
                    closed=bool(snap.closed[i]),
                    trigger=trigger,
                    first_event_at=first_time,
                    last_event_at=last_time,
                    evaluated_at=now,
                    model=identity,
                    source=Source(source_topic, partition, last_offset),
                    unknown_activities=int(snap.unknown[i]),
                )
            )
        return records
