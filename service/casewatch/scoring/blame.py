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
import numpy.typing as npt

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
        # Label tables built once per model: a batch then only indexes them.
        self._activities = LabelTable([*contract.activities, UNKNOWN_LABEL, END_LABEL])
        self._attributes = [a.name for a in contract.event_attributes]
        self._values = [
            LabelTable([*a.values, UNKNOWN_LABEL, MISSING_LABEL]) for a in contract.event_attributes
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
        per_case = chosen.sum(axis=1)
        blames = self._blames(explanation, which, column, np.repeat(n_events[rows], per_case))
        bounds = [0, *np.cumsum(per_case).tolist()]
        for i, row in enumerate(rows.tolist()):
            out[row] = blames[bounds[i] : bounds[i + 1]]
        return out

    def _blames(
        self, x: PositionExplanations, which: IntArray, column: IntArray, n_events: IntArray
    ) -> list[Blame]:
        """One blame per (explanation row, column) pair: every field is worked out on whole
        columns, so the loop only writes the sentence and the record."""
        ring = x.sequence.shape[1]  # the width the model read: the ring, or a narrower cut
        at_end = column == ring
        # The ring is right-aligned: its last column holds the case's latest event.
        position = np.where(at_end, n_events + 1, n_events - (ring - 1 - column))
        event_column = np.minimum(column, ring - 1)
        activity_ids = x.sequence[which, event_column]
        labels = self._activities
        activity = labels.of(activity_ids)
        activity[at_end] = END_LABEL
        previous = labels.of(x.sequence[which, np.maximum(column - 1, 0)])
        previous[at_end] = labels.of(activity_ids[at_end])
        previous[(column == 0) | (position == 1)] = None
        feature = np.where(at_end, 0, x.feature[which, column])
        expected_ids = x.expected[which, column]
        observed, expected = activity.copy(), labels.of(expected_ids)
        attribute = np.full(which.shape, None, dtype=object)
        for j, (name, values) in enumerate(zip(self._attributes, self._values, strict=True)):
            blamed = feature == j + 1
            if blamed.any() and x.event_attributes is not None:
                attribute[blamed] = name
                value_ids = x.event_attributes[which[blamed], event_column[blamed], j]
                observed[blamed] = values.of(value_ids)
                expected[blamed] = values.of(expected_ids[blamed])
        expected_p = _significant(x.expected_probability[which, column])
        observed_p = _significant(x.observed_probability[which, column])
        surprise = np.round(x.surprise[which, column].astype(np.float64), 6)
        out: list[Blame] = []
        append = out.append
        for at, act, attr, seen, likeliest, p, q, score, before in zip(
            position.tolist(), activity.tolist(), attribute.tolist(), observed.tolist(),
            expected.tolist(), expected_p, observed_p, surprise.tolist(), previous.tolist(),
            strict=True,
        ):  # fmt: skip
            sentence = reason(at, act, attr, seen, likeliest, p, before)
            append(Blame(at, act, attr, seen, likeliest, p, q, score, sentence))
        return out


class LabelTable:
    """Labels by id, with one more entry for an id without a label (a model's own padding, say),
    which is unknown."""

    def __init__(self, labels: Sequence[str]) -> None:
        self._size = len(labels)
        self._table = np.asarray([*labels, UNKNOWN_LABEL], dtype=object)

    def of(self, ids: IntArray) -> npt.NDArray[np.object_]:
        """The label of each id, in a new array the caller may write to."""
        inside = (ids >= 0) & (ids < self._size)
        out: npt.NDArray[np.object_] = self._table[np.where(inside, ids, self._size)]
        return out


def _significant(probabilities: npt.NDArray[np.float32]) -> list[float]:
    """Six significant digits: a tiny observed probability is not rounded away to 0. Integer
    over a power of ten is the double nearest the decimal, as parsing its text gives."""
    p = probabilities.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        decimals = np.clip(5 - np.floor(np.log10(np.where(p > 0, p, 1.0))), 0, 22)
        scale = 10.0**decimals
        rounded = np.where(p > 0, np.round(p * scale) / scale, p)
    values: list[float] = rounded.tolist()
    return values
