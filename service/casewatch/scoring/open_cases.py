"""The open cases' state as the changelog and rebalances see it: taken, restored, dropped.

Part of ``StreamingEvaluator`` (``casewatch.scoring.evaluator``), kept apart from scoring.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from casewatch.scoring.bound import BoundScorer
from casewatch.state.changes import ChangeTracker, StateChanges
from casewatch.state.codec import decode_state
from casewatch.state.store import CaseStore, IntArray
from casewatch.state.stream_time import IdleExpiry


class OpenCases:
    """The store, the change tracking, the idle clocks and the running scores of the evaluator's
    open cases."""

    store: CaseStore
    _bound: BoundScorer
    _changes: ChangeTracker | None
    _idle: IdleExpiry

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget the open cases of the given partitions (no evaluations); returns how many."""
        wanted = sorted(set(partitions))
        if self._changes is not None:
            self._changes.forget_partitions(wanted)
        self._idle.forget(wanted)
        return self.store.discard_partitions(wanted)

    def take_state_changes(self) -> StateChanges:
        """Cases that left memory and the state of cases changed since the last call."""
        if self._changes is None:
            raise RuntimeError("StreamingEvaluator was created without track_changes=True")
        return self._changes.take(self.store)

    def restore_case(self, case_id: str, state: bytes) -> None:
        """Load a case's state written by ``take_state_changes`` (replacing any open one)."""
        # Decoded before the store changes: a record that cannot be applied leaves no trace.
        row = self.store.restore(case_id, decode_state(self.store.shape, state))
        self._bound.forget(np.array([row], dtype=np.int64))
        self._idle.restored(self.store, row)

    def forget_case(self, case_id: str) -> None:
        """Drop an open case without an evaluation (its tombstone was restored)."""
        row = self.store.take(case_id)
        if row is not None:
            self.store.release(np.array([row], dtype=np.int64))

    def last_offset(self, case_id: str) -> int | None:
        """Source offset of the last event applied to an open case."""
        row = self.store.row_of(case_id)
        return None if row is None else int(self.store.last_offset[row])

    def _release(self, rows: IntArray) -> None:
        if self._changes is not None:
            self._changes.departing(self.store, rows)
        self.store.release(rows)
