"""Routing a batch of events to case-store rows: the only per-event Python loop.

The loop does what cannot be vectorised (dict look-ups of case ids, activity and attribute
names); everything after it works on the arrays it fills.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from casewatch._events import StreamingEvent
from casewatch._scorer import Scorer
from casewatch._store import CaseStore, IntArray

_NO_ROW = -1


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


class Router:
    """Maps events to rows, activity ids and attribute ids; detects closing events."""

    def __init__(self, store: CaseStore, scorer: Scorer, end_activities: frozenset[str]) -> None:
        contract = scorer.contract
        self._store = store
        self._activity_ids = scorer.activity_ids
        self._event_attribute_ids = scorer.event_attribute_ids
        self._end_activities = end_activities
        self._event_attribute_names = [a.name for a in contract.event_attributes]
        self._numeric_case = {n: i for i, n in enumerate(contract.numeric_case_attributes)}
        self._categorical_case = {
            a.name: (i, {v: j for j, v in enumerate(a.values)}, len(a.values))
            for i, a in enumerate(contract.categorical_case_attributes)
        }
        self.unknown_activity_events = 0

    def route(self, events: Sequence[StreamingEvent]) -> RoutedBatch:
        store = self._store
        index = store.index
        activity_ids = self._activity_ids
        unknown_id = store.shape.unknown_id
        end_activities = self._end_activities
        attribute_names = self._event_attribute_names
        attribute_ids = self._event_attribute_ids
        n = len(events)
        rows = np.empty(n, dtype=np.int64)
        activities = np.empty(n, dtype=np.int64)
        generation = np.empty(n, dtype=np.int64)
        closing = np.zeros(n, dtype=np.bool_)
        timestamps = np.empty(n, dtype=np.float64)
        partitions = np.empty(n, dtype=np.int64)
        offsets = np.empty(n, dtype=np.int64)
        attributes = np.empty((n, len(attribute_names)), dtype=np.int64)
        seen: dict[int, int] = {}
        unknown = 0
        for i, event in enumerate(events):
            row = index.pop(event.case_id, _NO_ROW)
            if row == _NO_ROW:
                row = store.open_row(event.case_id)
            rows[i] = row
            count = seen.get(row, 0)
            generation[i] = count
            seen[row] = count + 1
            activity = activity_ids.get(event.name, unknown_id)
            unknown += activity == unknown_id
            activities[i] = activity
            timestamp = event.timestamp
            timestamps[i] = math.nan if timestamp is None else timestamp
            partitions[i] = event.partition
            offsets[i] = event.offset
            for j, name in enumerate(attribute_names):
                value = event.attributes.get(name)
                ids = attribute_ids[j]
                attributes[i, j] = len(ids) + 1 if value is None else ids.get(str(value), len(ids))
            if event.close or event.name in end_activities:
                closing[i] = True
            else:
                index[event.case_id] = row
        self.unknown_activity_events += unknown
        return RoutedBatch(
            events, rows, activities, attributes, timestamps, partitions, offsets,
            generation, closing,
        )  # fmt: skip

    def merge_case_attributes(self, batch: RoutedBatch, selected: IntArray) -> None:
        if not (self._numeric_case or self._categorical_case):
            return
        store = self._store
        for i in selected.tolist():
            row = int(batch.rows[i])
            for name, value in batch.events[i].attributes.items():
                column = self._numeric_case.get(name)
                if column is not None:
                    try:
                        store.case_numeric[row, column] = float(value)
                    except (TypeError, ValueError):
                        store.case_numeric[row, column] = math.nan
                    continue
                categorical = self._categorical_case.get(name)
                if categorical is not None:
                    column, ids, unknown = categorical
                    store.case_categorical[row, column] = ids.get(str(value), unknown)
