"""Turning one batch of scores into evaluation records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import islice as take
from math import isnan
from typing import Any

import numpy as np

from casewatch.events import (
    Blame,
    ModelIdentity,
    Source,
    StreamingEvaluation,
    TransitionResidual,
)
from casewatch.scoring.blame import Blamer
from casewatch.scoring.features import Snapshot
from casewatch.scoring.scorer import ScoreBatch


class RecordBuilder:
    """Builds StreamingEvaluation records; label arrays and model identity resolved once."""

    def __init__(
        self,
        activities: list[str],
        identity: ModelIdentity,
        *,
        top_k: int = 3,
        blamer: Blamer | None = None,
    ) -> None:
        self._labels = np.asarray(activities, dtype=object)
        self._identity = identity
        self._top_k = max(1, min(top_k, len(activities)))
        self._blamer = blamer

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    @property
    def labels(self) -> np.ndarray[Any, Any]:
        """The activity of each residual column (an object array)."""
        return self._labels

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
        case_of, transition = np.nonzero(residuals > 0)
        bounds = np.searchsorted(case_of, np.arange(len(snap) + 1)).tolist()
        nonzero_labels = self._labels[transition].tolist()
        nonzero_values = residuals[case_of, transition].tolist()
        pairs = zip(nonzero_labels, nonzero_values, strict=True)
        top_structs, top_counts = self._top_structs(residuals)
        columns = _columns(snap, batch, top_counts, self._explanations(snap, batch, threshold))
        identity = self._identity
        id_prefix = f"{identity.sha256}|"
        blake2b = hashlib.blake2b
        records: list[StreamingEvaluation] = []
        append = records.append
        for i, (
            case_id, score, n_events, trigger, partition, first_offset, last_offset,
            first_time, last_time, closed, unknown, top_count, explanation,
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
                    list(take(top_structs, top_count)),
                    closed,
                    trigger,
                    first_time,
                    last_time,
                    now,
                    identity,
                    Source(source_topic, partition, last_offset),
                    unknown,
                    explanation,
                )
            )
        return records

    def _explanations(
        self, snap: Snapshot, batch: ScoreBatch, threshold: float
    ) -> list[list[Blame] | None]:
        if self._blamer is None:
            return [None] * len(snap)
        return self._blamer.blames(batch.explanation, batch.scores > threshold, snap.n_events)

    def _top_structs(
        self, residuals: np.ndarray[Any, Any]
    ) -> tuple[Iterator[TransitionResidual], list[int]]:
        """The batch's top transitions, case after case, and how many each case has.

        Top values are sorted, so a case's positive ones are a prefix of its row: the structs
        come off one map over the batch and each case takes its run of them (a comprehension
        per case costs more than the record).
        """
        top, top_values = self._top_transitions(residuals)
        positive = top_values > 0
        labels = self._labels[top[positive]].tolist()
        structs = map(TransitionResidual, labels, top_values[positive].tolist())
        return structs, positive.sum(axis=1).tolist()

    def _top_transitions(
        self, residuals: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Each case's ``top_k`` transition ids and residuals, largest first (ties: lower id)."""
        k = self._top_k
        # In id order, so the stable sort by residual below orders equal residuals by id.
        top = np.sort(np.argpartition(-residuals, k - 1, axis=1)[:, :k], axis=1)
        top_values = np.take_along_axis(residuals, top, axis=1)
        # argpartition keeps any of several residuals tied at the k-th place; the rows where
        # that happens with a positive residual (zeros are never reported) get a stable sort,
        # which keeps the lower ids.
        kth = top_values.min(axis=1, keepdims=True)
        tied = (kth[:, 0] > 0) & ((residuals == kth).sum(axis=1) > (top_values == kth).sum(axis=1))
        if tied.any():
            rows = np.flatnonzero(tied)
            top[rows] = np.argsort(-residuals[rows], axis=1, kind="stable")[:, :k]
            top_values[rows] = np.take_along_axis(residuals[rows], top[rows], axis=1)
        order = np.argsort(-top_values, axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_values, order, axis=1)


def _columns(
    snap: Snapshot,
    batch: ScoreBatch,
    top_counts: list[int],
    explanations: list[list[Blame] | None],
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
        top_counts,
        explanations,
        strict=True,
    )
