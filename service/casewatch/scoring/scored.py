"""One evaluation step's result as columns: the cases scored, their scores, and their records.

The daemon publishes straight from these columns: ``encoded`` writes the JSON records
(``casewatch.scoring.record_bytes``) and ``verdicts`` hands the metrics their columns, so no
``StreamingEvaluation`` is made per case. Records are built as objects (``RecordBuilder``) only
where a caller asks for them: the offline API, the few evaluations that raise an alert, an output
format that encodes objects.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from casewatch.events import StreamingEvaluation, Trigger
from casewatch.scoring.explanations import PositionExplanations
from casewatch.scoring.features import Snapshot
from casewatch.scoring.isolation import take as take_snapshot
from casewatch.scoring.json_columns import round6
from casewatch.scoring.record_bytes import RecordEncoder
from casewatch.scoring.records import RecordBuilder
from casewatch.scoring.scorer import ScoreBatch
from casewatch.state.store import IntArray
from casewatch.telemetry.verdicts import Verdicts


class ScoredBatch:
    """The due cases of one step, scored: one evaluation per row, in publishing order."""

    __slots__ = ("anomalous", "builder", "encoder", "now", "scores", "snap", "source_topic",
                 "threshold")  # fmt: skip

    def __init__(
        self,
        snap: Snapshot,
        scores: ScoreBatch,
        *,
        threshold: float,
        source_topic: str | None,
        now: float,
        builder: RecordBuilder,
        encoder: RecordEncoder,
    ) -> None:
        self.snap = snap
        self.scores = scores
        self.threshold = threshold
        self.source_topic = source_topic
        self.now = now
        # The model's record makers travel with its scores: a reload between steps changes both.
        self.builder = builder
        self.encoder = encoder
        self.anomalous: npt.NDArray[np.bool_] = scores.scores > threshold

    def __len__(self) -> int:
        return len(self.snap)

    @property
    def rows(self) -> IntArray:
        """The store row of each case (still readable for a leaving case)."""
        return self.snap.rows

    @property
    def triggers(self) -> list[Trigger]:
        return self.snap.triggers

    @property
    def case_ids(self) -> list[str]:
        return self.snap.case_ids

    def take(self, positions: IntArray) -> ScoredBatch:
        """The evaluations at ``positions`` (distinct), in that order."""
        scores = ScoreBatch(
            self.scores.scores[positions],
            self.scores.residuals[positions],
            _take_explanation(self.scores.explanation, positions, len(self)),
        )
        return ScoredBatch(
            take_snapshot(self.snap, positions),
            scores,
            threshold=self.threshold,
            source_topic=self.source_topic,
            now=self.now,
            builder=self.builder,
            encoder=self.encoder,
        )

    def evaluations(self) -> list[StreamingEvaluation]:
        """The records as objects, for callers that want them (the daemon publishes bytes)."""
        return self.builder.build(
            self.snap,
            self.scores,
            threshold=self.threshold,
            source_topic=self.source_topic,
            now=self.now,
        )

    def evaluations_at(self, positions: list[int]) -> list[StreamingEvaluation]:
        """The records at ``positions`` alone (the few evaluations that raise an alert)."""
        if not positions:
            return []
        return self.take(np.asarray(positions, dtype=np.int64)).evaluations()

    def encoded(self) -> list[bytes]:
        """Each record as JSON, the bytes ``msgspec.json`` writes for ``evaluations()``."""
        return self.encoder.encode(
            self.snap,
            self.scores,
            threshold=self.threshold,
            source_topic=self.source_topic,
            now=self.now,
        )

    def keys(self) -> list[bytes]:
        """Each record's key: its case id."""
        return [case_id.encode() for case_id in self.snap.case_ids]

    def verdicts(self) -> Verdicts:
        """The columns the metrics read, equal to ``Verdicts.of(self.evaluations())``."""
        snap = self.snap
        return Verdicts(
            model=self.builder.identity,
            threshold=self.threshold,
            triggers=list(snap.triggers),
            trace_scores=np.array(round6(self.scores.scores), dtype=np.float64),
            anomalous=self.anomalous,
            last_event_at=snap.last_time.astype(np.float64),
            blamed=self._blamed(),
        )

    def _blamed(self) -> list[str | None]:
        """The top transition of each anomalous case, as ``RecordBuilder`` picks it: the
        largest rounded residual, ties to the lower id, none when no residual is positive."""
        anomalous = np.flatnonzero(self.anomalous)
        residuals = self.scores.residuals
        if not anomalous.size or not residuals.shape[1]:
            return [None] * int(anomalous.size)
        rounded = np.round(residuals[anomalous].astype(np.float64), 6)
        top = rounded.argmax(axis=1)
        positive = rounded[np.arange(top.size), top] > 0
        labels = self.builder.labels[top].tolist()
        return [label if p else None for label, p in zip(labels, positive.tolist(), strict=True)]


def in_event_order(batch: ScoredBatch, causes: IntArray) -> ScoredBatch:
    """``batch`` sorted by the index of the event (or eviction) behind each evaluation; equal
    causes keep their order."""
    order = np.argsort(causes, kind="stable")
    if np.array_equal(order, np.arange(order.size)):
        return batch
    return batch.take(order)


def _take_explanation(
    explanation: PositionExplanations | None, positions: IntArray, n_rows: int
) -> PositionExplanations | None:
    """The explanation rows of the cases at ``positions``, renamed to their new positions."""
    if explanation is None:
        return None
    explained = np.arange(n_rows) if explanation.rows is None else explanation.rows
    new_position = np.full(n_rows, -1, dtype=np.int64)
    new_position[positions] = np.arange(positions.size)
    renamed = new_position[explained]
    kept = np.flatnonzero(renamed >= 0)
    x = explanation
    return PositionExplanations(
        surprise=x.surprise[kept],
        feature=x.feature[kept],
        expected=x.expected[kept],
        expected_probability=x.expected_probability[kept],
        observed_probability=x.observed_probability[kept],
        sequence=x.sequence[kept],
        event_attributes=None if x.event_attributes is None else x.event_attributes[kept],
        rows=renamed[kept],
    )


__all__ = ["ScoredBatch", "in_event_order"]
