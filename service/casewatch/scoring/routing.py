"""Routing a batch of events to case-store rows: the only per-event Python loop.

The loop does what cannot be vectorised (dict look-ups of case ids, activity and attribute
names); everything after it works on the arrays it fills.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from casewatch.events import StreamingEvent
from casewatch.scoring.scorer import Scorer
from casewatch.state.store import CaseStore, FloatArray, IntArray

_case_id = attrgetter("case_id")


def _label(value: object) -> str:
    """The text a categorical value is looked up by. When even ``str`` refuses the value (an
    integer of more than 4300 digits), a text no decoded event can carry, so it reads as unknown."""
    try:
        return str(value)
    except ValueError:
        return "\x00unprintable"


class RoutedBatch:
    """A batch after routing: one entry per event, grouped into generations.

    Generation g holds the g-th event of each case in the batch, so a generation never touches
    a row twice and applies with plain fancy indexing; scoring after each generation gives the
    every-event policy the state after each event.
    """

    __slots__ = (
        "activities", "attributes", "closing", "events", "generation", "offsets",
        "partitions", "rows", "timestamps",
    )  # fmt: skip

    def __init__(
        self,
        events: Sequence[StreamingEvent],
        rows: IntArray,
        activities: IntArray,
        attributes: IntArray,
        timestamps: np.ndarray,
        partitions: IntArray,
        offsets: IntArray,
        generation: IntArray,
        closing: np.ndarray,
    ) -> None:
        self.events = events
        self.rows = rows
        self.activities = activities
        self.attributes = attributes
        self.timestamps = timestamps
        self.partitions = partitions
        self.offsets = offsets
        self.generation = generation
        self.closing = closing

    def generations(self) -> Iterator[IntArray]:
        if int(self.generation.max()) == 0:
            yield np.arange(len(self.rows), dtype=np.int64)
            return
        order = np.argsort(self.generation, kind="stable")
        bounds = np.searchsorted(self.generation[order], np.arange(self.generation.max() + 2))
        for g in range(len(bounds) - 1):
            yield order[bounds[g] : bounds[g + 1]]


def _generation(rows: IntArray) -> IntArray:
    """For each event, how many earlier events of the batch went to the same row."""
    n = rows.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    # Position within the run of equal rows = position - start of its run.
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    generation = np.empty(n, dtype=np.int64)
    generation[order] = np.arange(n) - run_start
    return generation


class RoutingCounts:
    """Running totals of what the router saw since start, kept across model reloads; the
    daemon's metrics and drift window read their differences."""

    __slots__ = ("attribute_values", "events", "unknown_activities", "unknown_attribute_values")

    def __init__(self) -> None:
        self.events = 0
        self.unknown_activities = 0  # events whose activity the model does not know
        # Per-event attribute values present, of the attributes the model reads.
        self.attribute_values = 0
        self.unknown_attribute_values = 0  # of those, values the model does not know


class Router:
    """Maps events to rows, activity ids and attribute ids; detects closing events."""

    def __init__(
        self,
        store: CaseStore,
        scorer: Scorer,
        end_activities: frozenset[str],
        counts: RoutingCounts | None = None,
    ) -> None:
        contract = scorer.contract
        self._store = store
        self._activity_ids = scorer.activity_ids
        self._event_attribute_ids = scorer.event_attribute_ids
        # Per attribute column, the id of a value the model does not know; +1 is "missing".
        self._unknown_value_ids = np.array([len(ids) for ids in scorer.event_attribute_ids])
        self._end_activities = end_activities
        self._event_attribute_names = [a.name for a in contract.event_attributes]
        self._numeric_case = {n: i for i, n in enumerate(contract.numeric_case_attributes)}
        self._categorical_case = {
            a.name: (i, {v: j for j, v in enumerate(a.values)}, len(a.values))
            for i, a in enumerate(contract.categorical_case_attributes)
        }
        self.counts = counts if counts is not None else RoutingCounts()

    def route(self, events: Sequence[StreamingEvent]) -> RoutedBatch:
        activity_of = self._activity_ids.get
        unknown_id = self._store.shape.unknown_id
        end_activities = self._end_activities
        n = len(events)
        # Python lists in the loop, numpy conversion once after it: a numpy scalar store per
        # field and event costs several times a list append.
        activities: list[int] = []
        timestamps: list[float | None] = []
        partitions: list[int] = []
        offsets: list[int] = []
        closing_at: list[int] = []
        add_activity, add_timestamp = activities.append, timestamps.append
        add_partition, add_offset = partitions.append, offsets.append
        add_closing = closing_at.append
        for i, event in enumerate(events):
            name = event.name
            add_activity(activity_of(name, unknown_id))
            add_timestamp(event.timestamp)
            add_partition(event.partition)
            add_offset(event.offset)
            if event.close or name in end_activities:
                add_closing(i)
        rows = self._store.rows_for_events(map(_case_id, events), closing_at)
        row_array = np.fromiter(rows, dtype=np.int64, count=n)
        activity_array = np.fromiter(activities, dtype=np.int64, count=n)
        closing = np.zeros(n, dtype=np.bool_)
        closing[closing_at] = True
        self.counts.events += n
        self.counts.unknown_activities += int(np.count_nonzero(activity_array == unknown_id))
        return RoutedBatch(
            events,
            row_array,
            activity_array,
            self._event_attribute_columns(events),
            np.array(timestamps, dtype=np.float64),  # None becomes NaN
            np.fromiter(partitions, dtype=np.int64, count=n),
            np.fromiter(offsets, dtype=np.int64, count=n),
            _generation(row_array),
            closing,
        )

    def _event_attribute_columns(self, events: Sequence[StreamingEvent]) -> IntArray:
        columns = np.empty((len(events), len(self._event_attribute_names)), dtype=np.int64)
        for j, name in enumerate(self._event_attribute_names):
            ids = self._event_attribute_ids[j]
            unknown, missing = len(ids), len(ids) + 1
            lookup = ids.get
            columns[:, j] = [
                missing
                if (value := event.attributes.get(name)) is None
                else lookup(value if value.__class__ is str else _label(value), unknown)
                for event in events
            ]
        self._count_values(columns)
        return columns

    def _count_values(self, columns: IntArray) -> None:
        """Attribute values present and unknown in the batch, in two array comparisons."""
        if not columns.size:
            return
        unknown = self._unknown_value_ids
        self.counts.unknown_attribute_values += int(np.count_nonzero(columns == unknown))
        missing = int(np.count_nonzero(columns == unknown + 1))
        self.counts.attribute_values += columns.size - missing

    def apply(self, batch: RoutedBatch, selected: IntArray, seen: FloatArray) -> None:
        """Write one generation of ``batch`` into the store; ``seen`` is every event's stream
        time (``casewatch.state.stream_time``)."""
        self._store.apply(
            batch.rows[selected],
            batch.activities[selected],
            batch.attributes[selected],
            batch.timestamps[selected],
            batch.partitions[selected],
            batch.offsets[selected],
            seen[selected],
        )
        self.merge_case_attributes(batch, selected)

    def merge_case_attributes(self, batch: RoutedBatch, selected: IntArray) -> None:
        """Latest event wins: ``selected`` holds at most one event per case (a generation)."""
        if not (self._numeric_case or self._categorical_case):
            return
        numeric: tuple[list[int], list[int], list[float]] = ([], [], [])
        categorical: tuple[list[int], list[int], list[int]] = ([], [], [])
        rows = batch.rows
        for i in selected.tolist():
            row = int(rows[i])
            for name, value in batch.events[i].attributes.items():
                column = self._numeric_case.get(name)
                if column is not None:
                    try:
                        number = float(value)
                    except (TypeError, ValueError, OverflowError):
                        number = math.nan
                    _add(numeric, row, column, number)
                    continue
                known = self._categorical_case.get(name)
                if known is not None:
                    column, ids, unknown = known
                    _add(categorical, row, column, ids.get(_label(value), unknown))
        self._store.set_case_attributes(numeric, categorical)


def _add(cells: tuple[list[int], list[int], list[Any]], row: int, column: int, value: Any) -> None:
    cells[0].append(row)
    cells[1].append(column)
    cells[2].append(value)
