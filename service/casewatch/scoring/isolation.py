"""Scoring that survives a model failing on some cases.

One session run scores all due cases of a batch, so a model that fails on one case (an index out
of bounds past some sequence length, say) fails the run for all of them. When a run fails, the
batch is bisected: each half is run again, and halves that still fail are split until the failing
cases stand alone. The other cases are evaluated as usual; each failing case gets a
``ScoringFailure`` record in place of its evaluation, which the daemon sends to the dead-letter
topic. The happy path does no extra work: the same single run, then one integer test.

A model that fails on every case is no longer a per-case problem: after ``ALL_FAILING_RUNS``
consecutive runs in which every case failed, covering at least ``ALL_FAILING_CASES`` distinct
cases, ``score`` raises ModelError and the daemon stops with that one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np

from casewatch.errors import ModelError
from casewatch.events import ModelIdentity, Source, Trigger
from casewatch.scoring.features import Snapshot
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer
from casewatch.state.store import IntArray

ALL_FAILING_RUNS: Final = 3
ALL_FAILING_CASES: Final = 10


class ScoringFailure(msgspec.Struct, gc=False):
    """A case the model failed on: what the dead-letter record says instead of an evaluation."""

    case_id: str
    n_events: int
    trigger: Trigger
    closed: bool
    error: str
    model: ModelIdentity
    source: Source  # the case's last event
    first_offset: int  # the case's first event, on the same partition
    failed_at: float


@dataclass(frozen=True, slots=True)
class Split:
    """A failed batch taken apart: the scores of the cases that ran, and the cases that did not."""

    kept: IntArray
    scores: ScoreBatch
    failed: IntArray
    errors: list[str]


def _subset(features: Features, rows: IntArray) -> Features:
    return {name: array[rows] for name, array in features.items()}


def take(snap: Snapshot, rows: IntArray) -> Snapshot:
    positions = rows.tolist()
    return Snapshot(
        case_ids=[snap.case_ids[i] for i in positions],
        triggers=[snap.triggers[i] for i in positions],
        closed=snap.closed[rows],
        n_events=snap.n_events[rows],
        unknown=snap.unknown[rows],
        first_time=snap.first_time[rows],
        last_time=snap.last_time[rows],
        partition=snap.partition[rows],
        first_offset=snap.first_offset[rows],
        last_offset=snap.last_offset[rows],
        rows=snap.rows[rows],
    )


def bisect(scorer: Scorer, features: Features, size: int, error: str) -> Split:
    """Split a batch whose run failed with ``error`` until each failing case failed alone."""
    kept: list[IntArray] = []
    scored: list[ScoreBatch] = []
    failed: list[int] = []
    errors: list[str] = []

    def visit(rows: IntArray, known_to_fail: bool) -> None:
        if not known_to_fail:
            try:
                scored.append(scorer.run(_subset(features, rows), rows.size))
            except ModelError as exc:
                if rows.size == 1:
                    failed.append(int(rows[0]))
                    errors.append(str(exc))
                    return
            else:
                kept.append(rows)
                return
        middle = rows.size // 2
        visit(rows[:middle], False)
        visit(rows[middle:], False)

    if size == 1:
        failed.append(0)
        errors.append(error)
    else:
        visit(np.arange(size, dtype=np.int64), True)
    if not scored:
        width = len(scorer.activities)
        scored.append(ScoreBatch(np.zeros(0), np.zeros((0, width), np.float32)))
        kept.append(np.zeros(0, np.int64))
    scores = ScoreBatch.concat(scored)
    return Split(np.concatenate(kept), scores, np.asarray(failed, np.int64), errors)


class Isolation:
    """Runs the scorer over a batch; with ``enabled``, a failure costs only the failing cases.

    Failures are appended to ``failures`` (owned by the evaluator, emptied by the daemon).
    """

    def __init__(self, scorer: Scorer, *, enabled: bool, failures: list[ScoringFailure]) -> None:
        self._scorer = scorer
        self.enabled = enabled
        self.failures = failures
        self._all_failed_runs = 0
        self._all_failed_cases: set[str] = set()

    def score(
        self, snap: Snapshot, features: Features, source_topic: str | None, now: float
    ) -> tuple[Snapshot, ScoreBatch, IntArray | None]:
        """Scores of the cases that could be scored, their snapshot, and which rows they are
        (None: all of them)."""
        try:
            scores = self._scorer.run(features, len(snap))
        except ModelError as exc:
            if not self.enabled:
                raise
            return self._isolate(snap, features, str(exc), source_topic, now)
        if self._all_failed_runs:
            self._recovered()
        return snap, scores, None

    def _isolate(
        self, snap: Snapshot, features: Features, error: str, source_topic: str | None, now: float
    ) -> tuple[Snapshot, ScoreBatch, IntArray]:
        split = bisect(self._scorer, features, len(snap), error)
        failed = take(snap, split.failed)
        identity = self._scorer.identity
        self.failures.extend(
            ScoringFailure(
                case_id, n_events, trigger, closed, message, identity,
                Source(source_topic, partition, offset), first, now,
            )
            for case_id, n_events, trigger, closed, message, partition, offset, first in zip(
                failed.case_ids, failed.n_events.tolist(), failed.triggers,
                failed.closed.tolist(), split.errors, failed.partition.tolist(),
                failed.last_offset.tolist(), failed.first_offset.tolist(), strict=True,
            )
        )  # fmt: skip
        if split.kept.size:
            self._recovered()
        else:
            self._every_case_failed(failed.case_ids, error)
        return take(snap, split.kept), split.scores, split.kept

    def _recovered(self) -> None:
        self._all_failed_runs = 0
        self._all_failed_cases.clear()

    def _every_case_failed(self, case_ids: list[str], error: str) -> None:
        self._all_failed_runs += 1
        cases = self._all_failed_cases
        for case_id in case_ids:
            if len(cases) >= ALL_FAILING_CASES:
                break
            cases.add(case_id)
        if self._all_failed_runs >= ALL_FAILING_RUNS and len(cases) >= ALL_FAILING_CASES:
            raise ModelError(
                f"the model fails on every case ({self._all_failed_runs} runs in a row, "
                f"{len(cases)} or more cases); last error: {error}"
            )
