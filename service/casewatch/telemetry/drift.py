"""Sliding-window drift of the stream against the model's training baseline, in numpy.

The window holds the last ``size`` final evaluations (triggers close, timeout, evicted): their
scores, verdicts and score bins sit in a ring, and the flagged count and the bin counts follow
the slots a batch overwrites, so a batch costs O(its cases), not O(the window).
The event-side rates (unknown activities, unknown attribute values) are over the events routed
while those cases were closing: each batch that closes cases appends one entry of event counts
(with the counts of the batches before it that closed none), and entries are dropped from the
front while the rest still cover the window's cases. So the rates react to events at once,
before their cases close, and a window never holds more than ``size + 1`` entries.

PSI (population stability index) compares the window's score distribution with the training
cases' over the training bins: sum over bins of (actual - expected) * ln(actual / expected).
Empty bins are floored at ``PSI_FLOOR`` so that one empty bin makes a large, finite index.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FINAL_TRIGGERS = frozenset({"close", "timeout", "evicted"})
PSI_FLOOR = 1e-4


def population_stability_index(actual: FloatArray, expected: FloatArray) -> float:
    """PSI of the ``actual`` bin shares against the ``expected`` ones (same bins)."""
    a = np.maximum(actual, PSI_FLOOR)
    e = np.maximum(expected, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True, slots=True)
class Baseline:
    """The parts of a training summary the window compares with."""

    edges: FloatArray  # inner score bin edges, right-closed bins
    shares: FloatArray  # training share of each bin
    flagged_share: float
    unknown_value_rate: float | None


@dataclass(slots=True)
class EventCounts:
    cases: int = 0
    events: int = 0
    unknown_activities: int = 0
    values: int = 0
    unknown_values: int = 0

    def add(self, other: EventCounts) -> None:
        self.cases += other.cases
        self.events += other.events
        self.unknown_activities += other.unknown_activities
        self.values += other.values
        self.unknown_values += other.unknown_values

    def subtract(self, other: EventCounts) -> None:
        self.cases -= other.cases
        self.events -= other.events
        self.unknown_activities -= other.unknown_activities
        self.values -= other.values
        self.unknown_values -= other.unknown_values


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class DriftWindow:
    """The last ``size`` final evaluations and the events routed while they closed."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a drift window holds at least one case")
        self.size = size
        self._scores = np.zeros(size, dtype=np.float64)
        self._flagged = np.zeros(size, dtype=np.bool_)
        self._bins = np.zeros(size, dtype=np.int64)
        self._edges: FloatArray | None = None
        self.reset(None)

    def reset(self, edges: FloatArray | None) -> None:
        """Forget every case and event; bin new scores at ``edges`` (None: no bins)."""
        self._edges = edges
        self._bin_counts = np.zeros(0 if edges is None else edges.size + 1, dtype=np.int64)
        self._head = 0
        self.fill = 0
        self._flagged_count = 0
        self._entries: deque[EventCounts] = deque()
        self._pending = EventCounts()  # routed since the last batch that closed cases
        self._totals = EventCounts()  # of the entries

    def add_cases(self, scores: FloatArray, flagged: BoolArray) -> None:
        """Final evaluations, oldest first; the counts follow the slots they overwrite."""
        count = min(scores.size, self.size)
        if not count:
            return
        positions = (self._head + np.arange(count)) % self.size
        # Until the ring is full, the occupied slots are the ones before the head.
        replaced = positions if self.fill == self.size else positions[positions < self._head]
        self._flagged_count -= int(np.count_nonzero(self._flagged[replaced]))
        new_flagged = flagged[-count:]
        self._flagged[positions] = new_flagged
        self._flagged_count += int(np.count_nonzero(new_flagged))
        self._scores[positions] = scores[-count:]
        if self._edges is not None:
            bins = self._bin_counts.size
            self._bin_counts -= np.bincount(self._bins[replaced], minlength=bins)
            self._bins[positions] = np.searchsorted(self._edges, scores[-count:], side="left")
            self._bin_counts += np.bincount(self._bins[positions], minlength=bins)
        self._head = int((self._head + count) % self.size)
        self.fill = min(self.size, self.fill + count)
        self._pending.cases += int(scores.size)

    def add_events(self, routed: EventCounts) -> None:
        """Events routed in one batch; closes an entry when the batch closed cases."""
        self._pending.add(routed)
        if self._pending.cases:
            self._entries.append(self._pending)
            self._totals.add(self._pending)
            self._pending = EventCounts()
            self._trim()

    def _trim(self) -> None:
        entries, totals = self._entries, self._totals
        while len(entries) > 1 and totals.cases - entries[0].cases >= self.size:
            totals.subtract(entries.popleft())

    def _span(self) -> EventCounts:
        span = EventCounts()
        span.add(self._totals)
        span.add(self._pending)
        return span

    def scores(self) -> FloatArray:
        """The window's final scores (in ring order, which no statistic here depends on)."""
        return self._scores[: self.fill]

    @property
    def flagged_share(self) -> float | None:
        return _ratio(self._flagged_count, self.fill)

    @property
    def events(self) -> int:
        return self._span().events

    @property
    def unknown_activity_rate(self) -> float | None:
        span = self._span()
        return _ratio(span.unknown_activities, span.events)

    @property
    def unknown_value_rate(self) -> float | None:
        span = self._span()
        return _ratio(span.unknown_values, span.values)

    def psi(self, expected: FloatArray) -> float | None:
        """PSI of the window's scores against the ``expected`` shares of the bins it was reset
        with; None while it is empty or has no bins."""
        if not self.fill or self._edges is None:
            return None
        return population_stability_index(self._bin_counts / self.fill, expected)
