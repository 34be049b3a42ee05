"""Gathering model features and evaluation metadata for a batch of case rows.

Everything is a numpy gather over the rows, so the cost per case does not involve Python loops
over features. The snapshot copies what the evaluation record needs at the moment of scoring,
because later events in the same batch may change the row again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from casewatch.events import Trigger
from casewatch.scoring.scorer import Features
from casewatch.state.store import CaseStore, IntArray


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of the due cases at the moment they were scored."""

    case_ids: list[str]
    triggers: list[Trigger]
    closed: npt.NDArray[np.bool_]
    n_events: IntArray
    unknown: IntArray
    first_time: npt.NDArray[np.float64]
    last_time: npt.NDArray[np.float64]
    partition: IntArray
    first_offset: IntArray
    last_offset: IntArray
    # The store row of each case, still readable for a leaving case (its alert state is there).
    rows: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.case_ids)

    @staticmethod
    def concat(parts: list[Snapshot]) -> Snapshot:
        if len(parts) == 1:
            return parts[0]
        return Snapshot(
            case_ids=[c for p in parts for c in p.case_ids],
            triggers=[t for p in parts for t in p.triggers],
            closed=np.concatenate([p.closed for p in parts]),
            n_events=np.concatenate([p.n_events for p in parts]),
            unknown=np.concatenate([p.unknown for p in parts]),
            first_time=np.concatenate([p.first_time for p in parts]),
            last_time=np.concatenate([p.last_time for p in parts]),
            partition=np.concatenate([p.partition for p in parts]),
            first_offset=np.concatenate([p.first_offset for p in parts]),
            last_offset=np.concatenate([p.last_offset for p in parts]),
            rows=np.concatenate([p.rows for p in parts]),
        )


class FeatureGatherer:
    """Builds the feature arrays a scorer's contract asks for, and nothing else."""

    def __init__(self, wanted: frozenset[str], categorical_sizes: list[int]) -> None:
        self._wanted = wanted
        self._categorical_sizes = np.asarray(categorical_sizes, dtype=np.int64)

    def gather(self, store: CaseStore, rows: IntArray, closed: npt.NDArray[np.bool_]) -> Features:
        wanted = self._wanted
        out: Features = {}
        if "activity_counts" in wanted:
            out["activity_counts"] = store.counts[rows].astype(np.float32)
        if "n_events" in wanted:
            out["n_events"] = store.n_events[rows].astype(np.float32)[:, None]
        if "unknown_activities" in wanted:
            out["unknown_activities"] = store.unknown[rows].astype(np.float32)[:, None]
        if "elapsed_seconds" in wanted:
            elapsed = store.last_time[rows] - store.first_time[rows]
            out["elapsed_seconds"] = np.nan_to_num(elapsed).astype(np.float32)[:, None]
        if "closed" in wanted:
            out["closed"] = closed.astype(np.float32)[:, None]
        if "case_numeric" in wanted:
            out["case_numeric"] = store.case_numeric[rows]
        if "case_categorical" in wanted:
            ids = store.case_categorical[rows].astype(np.int64)
            out["case_categorical"] = np.where(ids < 0, self._categorical_sizes, ids)
        if "sequence" in wanted:
            out["sequence"] = store.sequences(rows)
        if "event_attributes" in wanted:
            out["event_attributes"] = store.event_attributes(rows)
        return out


def snapshot(
    store: CaseStore,
    rows: IntArray,
    case_ids: list[str],
    triggers: list[Trigger],
    closed: npt.NDArray[np.bool_],
) -> Snapshot:
    return Snapshot(
        case_ids=case_ids,
        triggers=triggers,
        closed=closed,
        n_events=store.n_events[rows],
        unknown=store.unknown[rows].astype(np.int64),
        first_time=store.first_time[rows],
        last_time=store.last_time[rows],
        partition=store.partition[rows].astype(np.int64),
        first_offset=store.first_offset[rows],
        last_offset=store.last_offset[rows],
        rows=rows,
    )


def concat_parts(parts: list[tuple[Snapshot, Features]]) -> tuple[Snapshot, Features]:
    """One snapshot and one feature set for the due cases of several parts, in part order."""
    snap = Snapshot.concat([p[0] for p in parts])
    if len(parts) == 1:
        return snap, parts[0][1]
    return snap, {name: np.concatenate([p[1][name] for p in parts]) for name in parts[0][1]}
