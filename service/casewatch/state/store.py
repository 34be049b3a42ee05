"""The case store: the state of every open case in preallocated numpy columns.

A dict maps case_id -> row; each column (declared in ``casewatch.state.columns``) holds one row
per case. Rows come from a free list and the arrays double when full: work per event is O(1) and
memory per case does not depend on its length (counts and a ring of its last K events).
The dict's insertion order is the order of last activity (a touched case is re-inserted at the
end): idle expiry and eviction under the memory bound read from its front without scanning.
Only this module writes the dict and the columns. A leaving case is first taken out of the dict;
its row stays readable for its final evaluation (and its alert state) until it is released.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from casewatch.state.columns import COLUMNS, COUNT_MAX, StoreShape

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

__all__ = ["COUNT_MAX", "CaseStore", "FloatArray", "IntArray", "StoreShape"]

_NO_ROW = -1


class CaseStore:
    """Columnar state of open cases. Rows are recycled; ``index`` maps case_id -> row."""

    # Columns, one row per case (``casewatch.state.columns`` has their types and sizes).
    counts: npt.NDArray[Any]
    ring: npt.NDArray[Any]
    attribute_ring: npt.NDArray[Any]
    case_numeric: npt.NDArray[Any]
    case_categorical: npt.NDArray[Any]
    n_events: npt.NDArray[Any]
    unknown: npt.NDArray[Any]
    first_time: npt.NDArray[Any]
    last_time: npt.NDArray[Any]
    last_seen: npt.NDArray[Any]
    partition: npt.NDArray[Any]
    first_offset: npt.NDArray[Any]
    last_offset: npt.NDArray[Any]
    anomalous_streak: npt.NDArray[Any]
    alerted: npt.NDArray[Any]

    def __init__(self, shape: StoreShape, *, capacity: int = 1024) -> None:
        self.shape = shape
        self._index: dict[str, int] = {}
        self._view: Mapping[str, int] = MappingProxyType(self._index)
        self._capacity = 0
        # Released rows are reused first (LIFO); rows never used yet are handed out from
        # ``_unused`` upwards, so spare capacity costs column bytes only, no Python ints.
        self._free: list[int] = []
        self._unused = 0
        self.case_ids: list[str] = []
        # (name, row shape, dtype, empty value) per column, resolved once for this shape.
        self._layout = [
            (c.name, c.row_shape(shape), c.dtype(shape), c.fill(shape)) for c in COLUMNS
        ]
        self._grow(max(capacity, 1))

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        columns: list[npt.NDArray[Any]] = []
        for name, cells, dtype, fill in self._layout:
            column: npt.NDArray[Any] = np.empty((capacity, *cells), dtype=dtype)
            column[old:] = fill
            if old:
                column[:old] = getattr(self, name)
            setattr(self, name, column)
            columns.append(column)
        # The same arrays in declaration order, for the calls that touch every column.
        self._columns = columns
        self.case_ids.extend([""] * (capacity - old))
        self._capacity = capacity

    # -- inspection ----------------------------------------------------------------------------

    @property
    def index(self) -> Mapping[str, int]:
        """case_id -> row of every open case, least recently seen first (read-only)."""
        return self._view

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._index

    def nbytes(self) -> int:
        """Bytes held by the columns (not counting the dict and the case id strings)."""
        return sum(column.nbytes for column in self._columns)

    def columns(self) -> list[npt.NDArray[Any]]:
        """The columns in declaration order (``casewatch.state.columns``), for reading."""
        return self._columns

    def row_of(self, case_id: str) -> int | None:
        return self._index.get(case_id)

    def rows(self) -> IntArray:
        """Rows of the open cases, least recently seen first."""
        return np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))

    def open_cases(self) -> list[str]:
        return sorted(self._index)

    def case_ids_of(self, rows: IntArray) -> list[str]:
        case_ids = self.case_ids
        return [case_ids[row] for row in rows.tolist()]

    # -- cases in and out ----------------------------------------------------------------------

    def rows_for_events(self, case_ids: Iterable[str], last_at: Sequence[int]) -> list[int]:
        """The row of each event of a batch (the i-th of ``case_ids`` is event i's case), a fresh
        one for a new case. The case becomes the most recently seen, except at the ascending
        positions ``last_at``: that event is its case's last, the case leaves the index (a later
        event starts a new case) and its row awaits ``release``."""
        index = self._index
        pop, open_row = index.pop, self._open_row
        rows: list[int] = []
        add_row = rows.append
        ids = iter(case_ids)
        start = 0
        # Runs of ordinary events between two last events: the loop over a run carries no
        # per-event test, which keeps routing a batch at dict speed.
        for stop in (*last_at, None):
            for case_id in itertools.islice(ids, None if stop is None else stop - start):
                row = pop(case_id, _NO_ROW)
                if row == _NO_ROW:
                    row = open_row(case_id)
                add_row(row)
                index[case_id] = row
            if stop is None:
                return rows
            case_id = next(ids)
            row = pop(case_id, _NO_ROW)
            add_row(open_row(case_id) if row == _NO_ROW else row)
            start = stop + 1
        return rows

    def _open_row(self, case_id: str) -> int:
        if self._free:
            row = self._free.pop()
        else:
            if self._unused == self._capacity:
                self._grow(self._capacity * 2)
            row = self._unused
            self._unused += 1
        self.case_ids[row] = case_id
        return row

    def take(self, case_id: str) -> int | None:
        """Take a case out of the index; its row stays readable until ``release``."""
        return self._index.pop(case_id, None)

    def take_rows(self, rows: IntArray) -> None:
        """Take the cases of ``rows`` out of the index; the rows stay readable until ``release``."""
        index, case_ids = self._index, self.case_ids
        for row in rows.tolist():
            del index[case_ids[row]]

    def take_least_recent(self, count: int) -> IntArray:
        """Take the ``count`` least recently seen cases out of the index; returns their rows."""
        index = self._index
        # One scan from the front, then pops: repeated next(iter(index)) would rescan the
        # deleted slots at the front of the dict each time.
        case_ids = list(itertools.islice(index, count))
        return np.fromiter((index.pop(c) for c in case_ids), dtype=np.int64, count=len(case_ids))

    def release(self, rows: IntArray) -> None:
        """Reset rows to their empty state and return them to the free list."""
        if rows.size == 0:
            return
        for column, (_, _, _, fill) in zip(self._columns, self._layout, strict=True):
            column[rows] = fill
        case_ids = self.case_ids
        released = rows.tolist()
        for row in released:
            case_ids[row] = ""
        self._free.extend(released)

    def discard_partitions(self, partitions: Iterable[int]) -> int:
        """Drop the open cases of ``partitions`` outright; returns how many."""
        wanted = np.asarray(sorted(set(partitions)), dtype=np.int64)
        if not self._index or wanted.size == 0:
            return 0
        rows = self.rows()
        dropped = rows[np.isin(self.partition[rows], wanted)]
        self.take_rows(dropped)
        self.release(dropped)
        return int(dropped.size)

    def restore(self, case_id: str, cells: Sequence[Any]) -> int:
        """Set every column of a case from ``cells``, one value per column in declaration order
        (``casewatch.state.columns``); a new case becomes the most recently seen."""
        row = self._index.get(case_id)
        if row is None:
            row = self._open_row(case_id)
            self._index[case_id] = row
        for column, value in zip(self._columns, cells, strict=True):
            column[row] = value
        return row

    def load(self, case_ids: Sequence[str], cells: Mapping[str, npt.NDArray[Any]]) -> IntArray:
        """Open new cases in order (the last becomes the most recently seen), one row of
        ``cells`` each; a column ``cells`` does not name keeps its empty value."""
        if any(case_id in self._index for case_id in case_ids):
            raise ValueError("load() opens new cases only")
        rows = np.array([self._open_row(case_id) for case_id in case_ids], dtype=np.int64)
        self._index.update(zip(case_ids, rows.tolist(), strict=True))
        for name, values in cells.items():
            getattr(self, name)[rows] = values
        return rows

    # -- events --------------------------------------------------------------------------------

    def apply(
        self,
        rows: IntArray,
        activities: IntArray,
        attributes: IntArray,
        timestamps: FloatArray,
        partitions: IntArray,
        offsets: IntArray,
        seen: FloatArray,
    ) -> None:
        """Add one event to each of ``rows``; every row appears at most once in a call.

        ``seen`` is each event's stream time (``casewatch.state.stream_time``), kept as last-seen.
        """
        known = activities < self.shape.activities
        known_rows, known_activities = rows[known], activities[known]
        counts = self.counts[known_rows, known_activities]
        self.counts[known_rows, known_activities] = counts + (counts < COUNT_MAX)
        self.unknown[rows[~known]] += 1
        n_events = self.n_events[rows]
        slot = n_events % self.shape.sequence_length
        self.ring[rows, slot] = activities
        if attributes.shape[1]:
            self.attribute_ring[rows, slot] = attributes
        first = n_events == 0
        self.n_events[rows] = n_events + 1
        self.first_offset[rows[first]] = offsets[first]
        self.last_offset[rows] = offsets
        self.partition[rows] = partitions
        self.last_seen[rows] = seen
        timed = ~np.isnan(timestamps)
        needs_first = timed & np.isnan(self.first_time[rows])
        self.first_time[rows[needs_first]] = timestamps[needs_first]
        self.last_time[rows[timed]] = timestamps[timed]

    def set_alert_state(self, rows: IntArray, streaks: list[int], alerted: list[bool]) -> None:
        """Write the alert state of ``rows`` (``casewatch.scoring.alerts``); each row once."""
        self.anomalous_streak[rows], self.alerted[rows] = streaks, alerted

    def set_case_attributes(
        self,
        numeric: tuple[list[int], list[int], list[float]],
        categorical: tuple[list[int], list[int], list[int]],
    ) -> None:
        """Write case attributes as (rows, columns, values); each (row, column) at most once."""
        rows, columns, values = numeric
        if rows:
            self.case_numeric[rows, columns] = values
        rows, columns, ids = categorical
        if rows:
            self.case_categorical[rows, columns] = ids

    def adopt_stream_time(self, stream: FloatArray) -> None:
        """Cases that arrived before their partition had a time start their idle time at
        ``stream`` (the partition's stream time, per row)."""
        last_seen = self.last_seen
        adopt = (self.n_events > 0) & np.isnan(last_seen) & ~np.isnan(stream)
        last_seen[adopt] = stream[adopt]

    # -- reading -------------------------------------------------------------------------------

    def sequences(self, rows: IntArray) -> IntArray:
        """The last K activity ids of each row in event order, right-aligned, padded on the left."""
        return self._in_event_order(self.ring, rows)

    def event_attributes(self, rows: IntArray) -> IntArray:
        return self._in_event_order(self.attribute_ring, rows)

    def _in_event_order(self, ring: npt.NDArray[Any], rows: IntArray) -> IntArray:
        k = self.shape.sequence_length
        slots = (self.n_events[rows, None] + np.arange(k)) % k
        ids: IntArray = ring[rows[:, None], slots].astype(np.int64, copy=False)
        return ids
