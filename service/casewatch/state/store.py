"""The case store: the state of every open case in preallocated numpy columns.

A dict maps case_id -> row; each column holds one row per case. Rows come from a free list and
the arrays double when full, so work per event is O(1) and memory per case does not depend on the
case's length: long cases keep only their activity counts and a ring of their last K events.

The dict's insertion order is the order of last activity (a touched case is re-inserted at the
end), which makes the least recently seen case the first key: idle expiry and eviction under the
memory bound read from the front without scanning.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Activity counts saturate here: uint16 halves the widest column, and a case with more than
# 65535 events of one activity is already far outside anything a model was trained on.
COUNT_MAX = np.iinfo(np.uint16).max


@dataclass(frozen=True, slots=True)
class StoreShape:
    """Sizes the columns are built for; they come from the model contract."""

    activities: int
    sequence_length: int
    event_attribute_sizes: tuple[int, ...] = ()
    numeric_case_attributes: int = 0
    categorical_case_attributes: int = 0

    @property
    def padding_id(self) -> int:
        """Sequence id of an empty ring slot (and of the case start)."""
        return self.activities + 1

    @property
    def unknown_id(self) -> int:
        return self.activities


def _id_dtype(largest: int) -> type[np.unsignedinteger[npt.NBitBase]]:
    return np.uint8 if largest < 2**8 else np.uint16 if largest < 2**16 else np.uint32  # type: ignore[return-value]


class CaseStore:
    """Columnar state of open cases. Rows are recycled; ``index`` maps case_id -> row."""

    def __init__(self, shape: StoreShape, *, capacity: int = 1024) -> None:
        self.shape = shape
        self.index: dict[str, int] = {}
        self._capacity = 0
        # Released rows are reused first (LIFO); rows never used yet are handed out from
        # ``_unused`` upwards, so spare capacity costs column bytes only, no Python ints.
        self._free: list[int] = []
        self._unused = 0
        self.case_ids: list[str] = []
        self._activity_dtype = _id_dtype(shape.padding_id)
        self._attribute_pad = np.array([size + 1 for size in shape.event_attribute_sizes])
        self._attribute_dtype = _id_dtype(int(self._attribute_pad.max(initial=0)))
        self._allocate_columns(max(capacity, 1))

    # -- columns -------------------------------------------------------------------------------

    def _allocate_columns(self, capacity: int) -> None:
        s = self.shape
        k, e = s.sequence_length, len(s.event_attribute_sizes)
        old = self._capacity
        self.counts = self._grow("counts", (capacity, s.activities), np.uint16, 0)
        self.ring = self._grow("ring", (capacity, k), self._activity_dtype, s.padding_id)
        self.attribute_ring = self._grow(
            "attribute_ring", (capacity, k, e), self._attribute_dtype, 0
        )
        if e and capacity > old:
            self.attribute_ring[old:] = self._attribute_pad.astype(self._attribute_dtype)
        self.case_numeric = self._grow(
            "case_numeric", (capacity, s.numeric_case_attributes), np.float32, np.nan
        )
        self.case_categorical = self._grow(
            "case_categorical", (capacity, s.categorical_case_attributes), np.int32, -1
        )
        # uint32: four billion events per case is beyond any process; int64 would cost 4 B/case.
        self.n_events = self._grow("n_events", (capacity,), np.uint32, 0)
        self.unknown = self._grow("unknown", (capacity,), np.uint32, 0)
        self.first_time = self._grow("first_time", (capacity,), np.float64, np.nan)
        self.last_time = self._grow("last_time", (capacity,), np.float64, np.nan)
        self.last_seen = self._grow("last_seen", (capacity,), np.float64, 0.0)
        self.partition = self._grow("partition", (capacity,), np.int32, -1)
        self.first_offset = self._grow("first_offset", (capacity,), np.int64, -1)
        self.last_offset = self._grow("last_offset", (capacity,), np.int64, -1)
        self.case_ids.extend([""] * (capacity - old))
        self._capacity = capacity

    def _grow(
        self, name: str, shape: tuple[int, ...], dtype: type, fill: float
    ) -> npt.NDArray[Any]:
        column: npt.NDArray[Any] = np.full(shape, fill, dtype=dtype)
        existing = getattr(self, name, None)
        if existing is not None:
            column[: existing.shape[0]] = existing
        return column

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.index

    def nbytes(self) -> int:
        """Bytes held by the columns (not counting the dict and the case id strings)."""
        columns = (
            self.counts, self.ring, self.attribute_ring, self.case_numeric, self.case_categorical,
            self.n_events, self.unknown, self.first_time, self.last_time, self.last_seen,
            self.partition, self.first_offset, self.last_offset,
        )  # fmt: skip
        return sum(c.nbytes for c in columns)

    # -- rows ----------------------------------------------------------------------------------

    def open_row(self, case_id: str) -> int:
        """A fresh row for a new case (the case is not yet in ``index``)."""
        if self._free:
            row = self._free.pop()
        else:
            if self._unused == self._capacity:
                self._allocate_columns(self._capacity * 2)
            row = self._unused
            self._unused += 1
        self.case_ids[row] = case_id
        return row

    def release(self, rows: IntArray) -> None:
        """Reset rows to their empty state and return them to the free list."""
        if rows.size == 0:
            return
        self.counts[rows] = 0
        self.ring[rows] = self.shape.padding_id
        if self.attribute_ring.shape[2]:
            self.attribute_ring[rows] = self._attribute_pad.astype(self._attribute_dtype)
        self.case_numeric[rows] = np.nan
        self.case_categorical[rows] = -1
        self.n_events[rows] = 0
        self.unknown[rows] = 0
        self.first_time[rows] = np.nan
        self.last_time[rows] = np.nan
        self.partition[rows] = -1
        self.first_offset[rows] = -1
        self.last_offset[rows] = -1
        case_ids = self.case_ids
        released = rows.tolist()
        for row in released:
            case_ids[row] = ""
        self._free.extend(released)

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

    # -- reading -------------------------------------------------------------------------------

    def sequences(self, rows: IntArray) -> IntArray:
        """The last K activity ids of each row in event order, right-aligned, padded on the left."""
        k = self.shape.sequence_length
        slots = (self.n_events[rows, None] + np.arange(k)) % k
        ids: IntArray = self.ring[rows[:, None], slots].astype(np.int64)
        return ids

    def event_attributes(self, rows: IntArray) -> IntArray:
        k = self.shape.sequence_length
        slots = (self.n_events[rows, None] + np.arange(k)) % k
        ids: IntArray = self.attribute_ring[rows[:, None], slots].astype(np.int64)
        return ids

    def open_cases(self) -> list[str]:
        return sorted(self.index)

    def least_recent(self) -> Iterator[tuple[str, int]]:
        """Open cases from the least to the most recently seen."""
        return iter(self.index.items())
