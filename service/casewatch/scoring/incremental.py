"""Incremental scoring: when every event is scored, run the model on a case's newest events only.

A model whose contract declares ``incremental`` (``casewatch.scoring.contract_incremental``)
gives the newest event of a ``window``-wide slice of the ring the value the whole ring gives it.
Each store row then keeps running residuals and a running score: the elementwise largest of the
window results of all the case's steps, and the case length they were merged through. An
evaluation of a case whose running state is merged through its previous event (or through this
one: a request or a timeout scores the same events again, and max is idempotent) runs the window
and merges; a case whose whole ring fits the window runs the window alone. Any other case (first
seen since a restore, a model swap or a failed evaluation) is scored on the whole ring once and
takes that result as its running state. For cases within the ring both ways give the same
scores and residuals; a case longer than the ring keeps, incrementally, the largest value of all
its events, where the whole ring only sees its last ``sequence_length`` (a restored long case
starts again from the ring).

The running state is not part of a case's changelog record: it is derived, and a restored case
rebuilds it from its ring on its next evaluation. Failures stay contained as without it: both
runs go through ``Isolation``, and a case the model failed on loses its running state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from casewatch.scoring.contract_incremental import WINDOWED_FEATURES
from casewatch.scoring.features import Snapshot
from casewatch.scoring.isolation import Isolation, take
from casewatch.scoring.scorer import Features, FloatMatrix, ScoreBatch
from casewatch.state.store import IntArray

_UNMERGED = -1


class RunningState:
    """Per store row: the running residuals [T] and score, and the case length they were merged
    through (``_UNMERGED`` when they describe no case). Grows with the rows it is asked about."""

    def __init__(self, activities: int) -> None:
        self.residuals: FloatMatrix = np.zeros((0, activities), np.float32)
        # float32 holds every score exactly: the contract's score output is float32.
        self.scores: npt.NDArray[np.float32] = np.zeros(0, np.float32)
        self.merged_through: IntArray = np.zeros(0, np.int64)

    def reserve(self, rows: int) -> None:
        old = self.merged_through.size
        if rows <= old:
            return
        size = max(rows, 2 * old, 1024)
        residuals = np.zeros((size, self.residuals.shape[1]), np.float32)
        residuals[:old] = self.residuals
        scores = np.zeros(size, np.float32)
        scores[:old] = self.scores
        merged = np.full(size, _UNMERGED, np.int64)
        merged[:old] = self.merged_through
        self.residuals, self.scores, self.merged_through = residuals, scores, merged

    def forget(self, rows: IntArray) -> None:
        """The rows' running state no longer describes their cases (a restored case)."""
        rows = rows[rows < self.merged_through.size]
        self.merged_through[rows] = _UNMERGED

    def nbytes(self) -> int:
        return self.residuals.nbytes + self.scores.nbytes + self.merged_through.nbytes


def occurrences(rows: IntArray) -> tuple[IntArray, IntArray]:
    """For each entry, how many earlier entries have its row (its rank), and the index of the
    latest of them (-1 for none): a case due on several events of one batch."""
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    starts = np.ones(rows.size, np.bool_)
    starts[1:] = ordered[1:] != ordered[:-1]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(rows.size), 0))
    rank = np.empty(rows.size, np.int64)
    rank[order] = np.arange(rows.size) - group_start
    previous = np.full(rows.size, -1, np.int64)
    previous[order[~starts]] = order[np.flatnonzero(~starts) - 1]
    return rank, previous


class IncrementalScoring:
    """Scores due cases from a window of their newest events where their running state allows,
    else on the whole ring; one model run for each of the two groups."""

    def __init__(self, isolation: Isolation, *, window: int, activities: int) -> None:
        self._isolation = isolation
        self.window = window
        self.state = RunningState(activities)

    def score(
        self, snap: Snapshot, features: Features, source_topic: str | None, now: float
    ) -> tuple[Snapshot, ScoreBatch, IntArray | None]:
        """As ``Isolation.score``: the scored cases' snapshot, scores and which they are."""
        rows, n = snap.rows, snap.n_events.astype(np.int64)
        size = len(snap)
        self.state.reserve(int(rows.max(initial=-1)) + 1)
        rank, previous = occurrences(rows)
        # The length the running state will be merged through when this entry is merged: an
        # earlier entry of the same case in the batch merges first.
        base = np.where(previous < 0, self.state.merged_through[rows], n[previous])
        windowed = (n <= self.window) | (base == n - 1) | (base == n)
        out = _Outcome(size, self.state.residuals.shape[1])
        run = _Runs(self._isolation, snap, features, source_topic, now, out)
        run.score(np.flatnonzero(windowed), self.window)
        run.score(np.flatnonzero(~windowed), None)
        for r in range(int(rank.max(initial=-1)) + 1):
            at = np.flatnonzero(rank == r)
            fallback = self._merge(at[windowed[at]], rows, n, out)
            run.score(fallback, None)
            self._take_ring(np.concatenate([at[~windowed[at]], fallback]), rows, n, out)
        kept = np.flatnonzero(out.ok)
        batch = ScoreBatch(out.scores[kept], out.residuals[kept])
        if kept.size == size:
            return snap, batch, None
        return take(snap, kept), batch, kept

    def _merge(self, entries: IntArray, rows: IntArray, n: IntArray, out: _Outcome) -> IntArray:
        """Merge window results into the running state (``entries`` have distinct rows); returns
        the entries whose running state turned out not to be merged through their previous
        event (an earlier event of the case failed in this batch), to be scored on the ring."""
        state = self.state
        failed = entries[~out.ok[entries]]
        state.merged_through[rows[failed]] = _UNMERGED
        entries = entries[out.ok[entries]]
        at, length = rows[entries], n[entries]
        merged = state.merged_through[at]
        fresh = length <= self.window
        follows = ~fresh & ((merged == length - 1) | (merged == length))
        for subset, start_over in ((entries[fresh], True), (entries[follows], False)):
            subset_rows = rows[subset]
            if not start_over:
                out.residuals[subset] = np.maximum(
                    out.residuals[subset], state.residuals[subset_rows]
                )
                out.scores[subset] = np.maximum(out.scores[subset], state.scores[subset_rows])
            state.residuals[subset_rows] = out.residuals[subset]
            state.scores[subset_rows] = out.scores[subset]
            state.merged_through[subset_rows] = n[subset]
        stale: IntArray = entries[~fresh & ~follows]
        out.ok[stale] = False
        return stale

    def _take_ring(self, entries: IntArray, rows: IntArray, n: IntArray, out: _Outcome) -> None:
        """Whole-ring results become the running state of their cases."""
        state = self.state
        scored, failed = entries[out.ok[entries]], entries[~out.ok[entries]]
        state.merged_through[rows[failed]] = _UNMERGED
        at = rows[scored]
        state.residuals[at] = out.residuals[scored]
        state.scores[at] = out.scores[scored]
        state.merged_through[at] = n[scored]


class _Outcome:
    """Scores and residuals per due entry, and whether the entry was scored."""

    def __init__(self, size: int, activities: int) -> None:
        self.scores = np.zeros(size)
        self.residuals: FloatMatrix = np.zeros((size, activities), np.float32)
        self.ok = np.zeros(size, np.bool_)


class _Runs:
    """Model runs over subsets of a batch's entries, whole ring or window, failures isolated."""

    def __init__(
        self,
        isolation: Isolation,
        snap: Snapshot,
        features: Features,
        source_topic: str | None,
        now: float,
        out: _Outcome,
    ) -> None:
        self._isolation, self._snap, self._features = isolation, snap, features
        self._source_topic, self._now, self._out = source_topic, now, out

    def score(self, entries: IntArray, window: int | None) -> None:
        if not entries.size:
            return
        # Usually every entry is in one group: then the batch's arrays go as they are.
        whole = entries.size == len(self._snap)
        subset = {
            name: _rows(array, None if whole else entries, window)
            if window is not None and name in WINDOWED_FEATURES
            else array
            if whole
            else array[entries]
            for name, array in self._features.items()
        }
        snap = self._snap if whole else take(self._snap, entries)
        _, batch, kept = self._isolation.score(snap, subset, self._source_topic, self._now)
        scored = entries if kept is None else entries[kept]
        out = self._out
        out.scores[scored] = batch.scores
        out.residuals[scored] = batch.residuals
        out.ok[scored] = True


def _rows(array: npt.NDArray[np.generic], rows: IntArray | None, window: int) -> npt.NDArray[Any]:
    """The last ``window`` ring positions of ``rows`` (None: all), contiguous for onnxruntime."""
    newest = array[:, -window:] if rows is None else array[rows, -window:]
    return np.ascontiguousarray(newest)


# Ring widths go up in steps of this many positions, so a stream's batches reuse a few shapes.
_WIDTH_STEP = 4


def narrow_ring(features: Features, longest: int, ring: int, window: int) -> Features:
    """``features`` with the ring-wide ones cut to the newest positions that hold the longest
    case's events (at least ``window``, rounded up to ``_WIDTH_STEP``), when that is narrower
    than the ring.

    For a model declaring incremental scoring a case's result depends only on its events, so
    the positions left of every case's first event (padding) change nothing but the work.
    """
    width = min(ring, -(-max(window, longest) // _WIDTH_STEP) * _WIDTH_STEP)
    if width >= ring:
        return features
    return {
        name: _rows(array, None, width) if name in WINDOWED_FEATURES else array
        for name, array in features.items()
    }
