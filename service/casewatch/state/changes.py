"""Which cases changed since their state was last written to the changelog."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from casewatch.state.codec import encode_rows
from casewatch.state.store import CaseStore, IntArray


@dataclass(slots=True)
class StateChanges:
    """Tombstones first (cases that left memory), then the current state of changed cases."""

    departed: list[tuple[str, int, int]] = field(default_factory=list)  # case, partition, offset
    states: list[tuple[str, int, bytes]] = field(default_factory=list)  # case, partition, state

    def __len__(self) -> int:
        return len(self.departed) + len(self.states)


class ChangeTracker:
    """Collects touched rows and departing cases between two checkpoints.

    Rows, not case ids, are remembered: a row released and reused in between belongs to a case
    that was touched too, and a row released and left empty is skipped.
    """

    def __init__(self) -> None:
        self._rows: set[int] = set()
        self._departed: list[tuple[str, int, int]] = []

    def touched(self, rows: IntArray) -> None:
        self._rows.update(rows.tolist())

    def rows_replaced(self, rows: IntArray) -> None:
        """The store was rebuilt: forget old row numbers, mark all of ``rows`` changed."""
        self._rows = set(rows.tolist())

    def departing(self, store: CaseStore, rows: IntArray) -> None:
        """Record cases about to leave memory; call before their rows are released."""
        ids, partitions, offsets = store.case_ids, store.partition, store.last_offset
        self._departed.extend(
            (ids[row], int(partitions[row]), int(offsets[row])) for row in rows.tolist()
        )

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop pending changes of partitions this instance no longer owns."""
        gone = set(partitions)
        self._departed = [d for d in self._departed if d[1] not in gone]

    def take(self, store: CaseStore) -> StateChanges:
        ids = store.case_ids
        rows = np.array([row for row in sorted(self._rows) if ids[row]], dtype=np.int64)
        states = list(
            zip(
                store.case_ids_of(rows),
                store.partition[rows].tolist(),
                encode_rows(store, rows),
                strict=True,
            )
        )
        changes = StateChanges(self._departed, states)
        self._rows = set()
        self._departed = []
        return changes
