"""Naming the events an anomalous evaluation is blamed on, from the model's explanation outputs.

For each anomalous case, the positions with the largest surprise (up to ``top_k``, ties to the
earlier position, only positions that add to the score) become ``Blame`` records: the event's
place in the case, its activity, the blamed attribute if any, what was observed and what the
model expected there with both probabilities, and one sentence a person reads, e.g.
``Create PR after Release PO; expected Create PO (0.93)``. Normal evaluations get None, so a
batch without anomalies costs one comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from casewatch.events import Blame
from casewatch.scoring.contract import Contract
from casewatch.scoring.explanations import PositionExplanations
from casewatch.state.store import IntArray

END_LABEL = "<end>"
UNKNOWN_LABEL = "<unknown>"
MISSING_LABEL = "<missing>"
DEFAULT_TOP_K = 2


def reason(blame: Blame, previous: str | None) -> str:
    """The one-line sentence of a blame; ``previous`` is the activity before the blamed event
    (None at the start of the case, or when it fell out of the ring)."""
    expected = f"{blame.expected} ({blame.expected_probability:.2f})"
    if blame.activity == END_LABEL:
        return f"case ended after {previous}; expected {expected}"
    if blame.attribute is not None:
        return f"{blame.attribute} {blame.observed} on {blame.activity}; expected {expected}"
    if blame.expected == END_LABEL:
        expected = f"the case to end ({blame.expected_probability:.2f})"
    if blame.position == 1:
        return f"{blame.activity} at the start; expected {expected}"
    if previous is None:
        return f"{blame.activity}; expected {expected}"
    return f"{blame.activity} after {previous}; expected {expected}"


class Blamer:
    """Blames of a batch's anomalous cases; labels resolved once per model."""

    def __init__(self, contract: Contract, *, top_k: int = DEFAULT_TOP_K) -> None:
        self._activities = [*contract.activities, UNKNOWN_LABEL, END_LABEL]
        self._attributes = [a.name for a in contract.event_attributes]
        self._values = [
            [*a.values, UNKNOWN_LABEL, MISSING_LABEL] for a in contract.event_attributes
        ]
        self._ring = contract.sequence_length
        self._top_k = max(0, min(top_k, self._ring + 1))

    def blames(
        self,
        explanation: PositionExplanations | None,
        anomalous: np.ndarray[tuple[int], np.dtype[np.bool_]],
        n_events: IntArray,
    ) -> list[list[Blame] | None]:
        """Per case of the batch: its blames when anomalous, else None."""
        out: list[list[Blame] | None] = [None] * len(anomalous)
        if explanation is None or not self._top_k or not anomalous.any():
            return out
        rows = np.flatnonzero(anomalous)
        surprise = explanation.surprise[rows]
        order = np.argsort(-surprise, axis=1, kind="stable")[:, : self._top_k]
        top = np.take_along_axis(surprise, order, axis=1) > 0
        for row, columns, kept, n in zip(
            rows.tolist(), order.tolist(), top.tolist(), n_events[rows].tolist(), strict=True
        ):
            out[row] = [
                self._blame(explanation, row, column, n)
                for column, keep in zip(columns, kept, strict=True)
                if keep
            ]
        return out

    def _blame(self, x: PositionExplanations, row: int, column: int, n_events: int) -> Blame:
        ring = self._ring
        expected_id = int(x.expected[row, column])
        feature = int(x.feature[row, column])
        at_end = column == ring
        # The ring is right-aligned: its last column holds the case's latest event.
        position = n_events + 1 if at_end else n_events - (ring - 1 - column)
        before = ring - 1 if at_end else column - 1
        previous = self._activity(x.sequence, row, before) if before >= 0 else None
        activity = END_LABEL if at_end else self._activity(x.sequence, row, column)
        attribute: str | None = None
        observed, expected = activity, self._label(self._activities, expected_id)
        if feature > 0 and not at_end and x.event_attributes is not None:
            j = feature - 1
            attribute = self._attributes[j]
            values = self._values[j]
            observed = self._label(values, int(x.event_attributes[row, column, j]))
            expected = self._label(values, expected_id)
        blame = Blame(
            position,
            activity,
            attribute,
            observed,
            expected,
            _significant(x.expected_probability[row, column]),
            _significant(x.observed_probability[row, column]),
            round(float(x.surprise[row, column]), 6),
            "",
        )
        return msgspec.structs.replace(blame, reason=reason(blame, previous))

    def _activity(self, sequence: IntArray, row: int, column: int) -> str:
        return self._label(self._activities, int(sequence[row, column]))

    @staticmethod
    def _label(labels: Sequence[str], index: int) -> str:
        return labels[index] if 0 <= index < len(labels) else UNKNOWN_LABEL


def _significant(probability: np.floating[Any]) -> float:
    """Six significant digits: a tiny observed probability is not rounded away to 0."""
    return float(f"{float(probability):.6g}")
