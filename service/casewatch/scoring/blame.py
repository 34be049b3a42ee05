"""Naming the events an anomalous evaluation is blamed on, from the model's explanation outputs.

Scoring runs a graph without the explanation nodes; after it, the anomalous cases of the batch
alone go through the whole graph once more (``Blamer.explain``), so a batch without anomalies
costs one comparison. For each anomalous case, the positions with the largest surprise (up to
``top_k``, ties to the earlier position, only positions that add to the score) become ``Blame``
records: the event's place in the case, its activity, the blamed attribute if any, what was
observed and what the model expected there with both probabilities, and one sentence a person
reads, e.g. ``Create PR after Release PO; expected Create PO (0.93)``. Normal evaluations get
None. A failing explanation run leaves the evaluations of its batch without explanations: the
scores stand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from casewatch.errors import ModelError
from casewatch.events import Blame
from casewatch.scoring.contract import Contract
from casewatch.scoring.explanations import IntArray, PositionExplanations
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer

END_LABEL = "<end>"
UNKNOWN_LABEL = "<unknown>"
MISSING_LABEL = "<missing>"
DEFAULT_TOP_K = 2
BoolArray = np.ndarray[tuple[int], np.dtype[np.bool_]]


def reason(
    position: int, activity: str, attribute: str | None, observed: str, expected: str,
    probability: float, previous: str | None,
) -> str:  # fmt: skip
    """The one-line sentence of a blame; ``previous`` is the activity before the blamed event
    (None at the start of the case, or when it fell out of the ring)."""
    likeliest = f"{expected} ({probability:.2f})"
    if activity == END_LABEL:
        return f"case ended after {previous}; expected {likeliest}"
    if attribute is not None:
        return f"{attribute} {observed} on {activity}; expected {likeliest}"
    if expected == END_LABEL:
        likeliest = f"the case to end ({probability:.2f})"
    if position == 1:
        return f"{activity} at the start; expected {likeliest}"
    if previous is None:
        return f"{activity}; expected {likeliest}"
    return f"{activity} after {previous}; expected {likeliest}"


class Blamer:
    """Blames of a batch's anomalous cases; labels resolved once per model."""

    def __init__(self, contract: Contract, *, top_k: int = DEFAULT_TOP_K) -> None:
        self._activities = [*contract.activities, UNKNOWN_LABEL, END_LABEL]
        self._attributes = [a.name for a in contract.event_attributes]
        self._values = [
            [*a.values, UNKNOWN_LABEL, MISSING_LABEL] for a in contract.event_attributes
        ]
        self._ring = contract.sequence_length
        self._threshold = contract.threshold
        self._top_k = max(0, min(top_k, self._ring + 1))

    def explain(
        self, scorer: Scorer, batch: ScoreBatch, features: Features, kept: IntArray | None
    ) -> ScoreBatch:
        """``batch`` with the explanation outputs of its anomalous cases. ``features`` are the
        batch's before isolation took failing cases out; ``kept`` names the rows that stayed."""
        if not self._top_k or not scorer.explains:
            return batch
        anomalous = np.flatnonzero(batch.scores > scorer.threshold)
        if not anomalous.size:
            return batch
        try:
            explanation = scorer.explain(features, anomalous if kept is None else kept[anomalous])
        except ModelError:
            return batch
        return dataclasses.replace(
            batch, explanation=dataclasses.replace(explanation, rows=anomalous)
        )

    def blames(
        self, explanation: PositionExplanations | None, anomalous: BoolArray, n_events: IntArray
    ) -> list[list[Blame] | None]:
        """Per case of the batch: its blames when anomalous, else None."""
        out: list[list[Blame] | None] = [None] * len(anomalous)
        if explanation is None or not self._top_k or not anomalous.any():
            return out
        if explanation.rows is None:
            at = np.flatnonzero(anomalous)
            rows = at
        else:
            at = np.flatnonzero(anomalous[explanation.rows])
            rows = explanation.rows[at]
        surprise = explanation.surprise[at]
        order = np.argsort(-surprise, axis=1, kind="stable")[:, : self._top_k]
        chosen = np.take_along_axis(surprise, order, axis=1) > 0
        which, column = np.repeat(at, order.shape[1])[chosen.ravel()], order[chosen]
        blames = self._blames(explanation, which, column, np.repeat(n_events[rows], chosen.sum(1)))
        bounds = np.concatenate([[0], np.cumsum(chosen.sum(axis=1))]).tolist()
        for i, row in enumerate(rows.tolist()):
            out[row] = blames[bounds[i] : bounds[i + 1]]
        return out

    def _blames(
        self, x: PositionExplanations, which: IntArray, column: IntArray, n_events: IntArray
    ) -> list[Blame]:
        """One blame per (explanation row, column) pair; whole columns go to Python at once."""
        ring = self._ring
        at_end = column == ring
        # The ring is right-aligned: its last column holds the case's latest event.
        position = np.where(at_end, n_events + 1, n_events - (ring - 1 - column))
        event_column = np.minimum(column, ring - 1)
        activity = x.sequence[which, event_column]
        previous = np.where(column > 0, x.sequence[which, np.maximum(column - 1, 0)], -1)
        previous = np.where(at_end, activity, previous)
        feature = np.where(at_end, 0, x.feature[which, column])
        if x.event_attributes is not None and x.event_attributes.shape[2]:
            j = np.maximum(feature - 1, 0)
            value = x.event_attributes[which, event_column, j]
        else:
            value = np.full(which.shape, -1)
        out = []
        for args in zip(
            position.tolist(), activity.tolist(), previous.tolist(), at_end.tolist(),
            feature.tolist(), value.tolist(), x.expected[which, column].tolist(),
            x.expected_probability[which, column].tolist(),
            x.observed_probability[which, column].tolist(), x.surprise[which, column].tolist(),
            strict=True,
        ):  # fmt: skip
            out.append(self._blame(*args))
        return out

    def _blame(
        self, position: int, activity_id: int, previous_id: int, at_end: bool, feature: int,
        value: int, expected_id: int, expected_p: float, observed_p: float, surprise: float,
    ) -> Blame:  # fmt: skip
        activities = self._activities
        activity = END_LABEL if at_end else _label(activities, activity_id)
        previous = _label(activities, previous_id) if previous_id >= 0 else None
        attribute = None
        observed, expected = activity, _label(activities, expected_id)
        if feature > 0 and feature <= len(self._attributes):
            attribute = self._attributes[feature - 1]
            values = self._values[feature - 1]
            observed, expected = _label(values, value), _label(values, expected_id)
        expected_p = _significant(expected_p)
        sentence = reason(position, activity, attribute, observed, expected, expected_p, previous)
        return Blame(
            position, activity, attribute, observed, expected, expected_p,
            _significant(observed_p), round(surprise, 6), sentence,
        )  # fmt: skip


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else UNKNOWN_LABEL


def _significant(probability: float) -> float:
    """Six significant digits: a tiny observed probability is not rounded away to 0."""
    return float(f"{probability:.6g}")
