"""Turning one batch of scores into evaluation records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice as take
from math import isnan
from typing import Any

import numpy as np

from casewatch.events import (
    ModelIdentity,
    Source,
    StreamingEvaluation,
    TransitionResidual,
)
from casewatch.scoring.features import Snapshot
from casewatch.scoring.scorer import ScoreBatch


class RecordBuilder:
    """Builds StreamingEvaluation records; label arrays and model identity resolved once."""

    def __init__(self, activities: list[str], identity: ModelIdentity, *, top_k: int = 3) -> None:
        self._labels = np.asarray(activities, dtype=object)
        self._label_list = [str(a) for a in activities]
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
        top, top_values = self._top_transitions(residuals)
        case_of, transition = np.nonzero(residuals > 0)
        bounds = np.searchsorted(case_of, np.arange(len(snap) + 1)).tolist()
        labels = self._label_list
        nonzero_labels = self._labels[transition].tolist()
        nonzero_values = residuals[case_of, transition].tolist()
        pairs = zip(nonzero_labels, nonzero_values, strict=True)
        columns = _columns(snap, batch, top.tolist(), top_values.tolist())
        identity = self._identity
        id_prefix = f"{identity.sha256}|"
        blake2b = hashlib.blake2b
        records: list[StreamingEvaluation] = []
        append = records.append
        for i, (
            case_id, score, n_events, trigger, partition, first_offset, last_offset,
            first_time, last_time, closed, unknown, top_ids, top_residuals,
        ) in enumerate(columns):  # fmt: skip
            # The evaluation_id: same input scored by the same model, same id (so consumers
            # can de-duplicate redeliveries). Built inline: a call per record is measurable.
            text = (
                f"{id_prefix}{case_id}|{n_events}|{trigger}|{partition}|{first_offset}|"
                f"{last_offset}|{first_time}|{last_time}"
            )
            append(
                StreamingEvaluation(
                    blake2b(text.encode(), digest_size=16).hexdigest(),
                    case_id,
                    n_events,
                    round(score, 6),
                    threshold,
                    score > threshold,
                    # Each case takes its run of nonzero residuals off one shared iterator:
                    # cheaper than slicing two lists per case.
                    dict(take(pairs, bounds[i + 1] - bounds[i])),
                    [
                        TransitionResidual(labels[t], v)
                        for t, v in zip(top_ids, top_residuals, strict=True)
                        if v > 0
                    ],
                    closed,
                    trigger,
                    first_time,
                    last_time,
                    now,
                    identity,
                    Source(source_topic, partition, last_offset),
                    unknown,
                )
            )
        return records

    def _top_transitions(
        self, residuals: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Each case's ``top_k`` transition ids and residuals, largest first (ties: lower id)."""
        k = self._top_k
        top = np.argpartition(-residuals, k - 1, axis=1)[:, :k]
        top_values = np.take_along_axis(residuals, top, axis=1)
        order = np.argsort(-top_values, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_values, order, axis=1)


def _columns(
    snap: Snapshot, batch: ScoreBatch, top: list[list[int]], top_values: list[list[float]]
) -> Iterator[tuple[Any, ...]]:
    """The batch's record fields, one tuple per case. Whole columns go to Python once: indexing
    numpy scalars row by row costs more than the records themselves."""
    first_times = [None if isnan(t) else t for t in snap.first_time.tolist()]
    last_times = [None if isnan(t) else t for t in snap.last_time.tolist()]
    return zip(
        snap.case_ids,
        batch.scores.tolist(),
        snap.n_events.tolist(),
        snap.triggers,
        snap.partition.tolist(),
        snap.first_offset.tolist(),
        snap.last_offset.tolist(),
        first_times,
        last_times,
        snap.closed.tolist(),
        snap.unknown.tolist(),
        top,
        top_values,
        strict=True,
    )
