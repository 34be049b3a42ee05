"""RecordBuilder: the batch-wise construction gives the records a plain per-case one would."""

from __future__ import annotations

import hashlib
from math import isnan
from typing import Any

import msgspec
import numpy as np
import pytest

from casewatch.events import ModelIdentity, Source, StreamingEvaluation, TransitionResidual
from casewatch.scoring.features import Snapshot
from casewatch.scoring.records import RecordBuilder
from casewatch.scoring.scorer import ScoreBatch

IDENTITY = ModelIdentity("m", "1.0.0", "ab" * 32)
ACTIVITIES = [f"act-{i}" for i in range(12)]


def plain_record(
    snap: Snapshot, batch: ScoreBatch, i: int, *, top_k: int, threshold: float, now: float
) -> StreamingEvaluation:
    """One case's record built field by field, the way the format is specified."""
    row = np.round(batch.residuals[i].astype(np.float64), 6)
    residuals = {ACTIVITIES[t]: float(row[t]) for t in range(len(row)) if row[t] > 0}
    order = sorted(range(len(row)), key=lambda t: (-row[t], t))[:top_k]
    top = [TransitionResidual(ACTIVITIES[t], float(row[t])) for t in order if row[t] > 0]
    first = float(snap.first_time[i])
    last = float(snap.last_time[i])
    first_at = None if isnan(first) else first
    last_at = None if isnan(last) else last
    n, trigger, part = int(snap.n_events[i]), snap.triggers[i], int(snap.partition[i])
    first_offset, last_offset = int(snap.first_offset[i]), int(snap.last_offset[i])
    text = (
        f"{IDENTITY.sha256}|{snap.case_ids[i]}|{n}|{trigger}|{part}|{first_offset}|"
        f"{last_offset}|{first_at}|{last_at}"
    )
    score = float(batch.scores[i])
    return StreamingEvaluation(
        hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
        snap.case_ids[i],
        n,
        round(score, 6),
        threshold,
        score > threshold,
        residuals,
        top,
        bool(snap.closed[i]),
        trigger,
        first_at,
        last_at,
        now,
        IDENTITY,
        Source("events", part, last_offset),
        int(snap.unknown[i]),
    )


def batch_of(rng: np.random.Generator, size: int) -> tuple[Snapshot, ScoreBatch]:
    residuals = rng.exponential(1.0, (size, len(ACTIVITIES))).astype(np.float32)
    # Mostly zeros, as with real models, plus ties and rows without any residual.
    residuals[rng.random(residuals.shape) < 0.8] = 0.0
    residuals[::7, 3] = residuals[::7, 5] = 0.5
    residuals[::11] = 0.0
    first = rng.uniform(1.7e9, 1.8e9, size)
    first[::5] = np.nan
    snap = Snapshot(
        case_ids=[f"case-{i}" for i in range(size)],
        triggers=[("event", "close", "timeout")[i % 3] for i in range(size)],  # type: ignore[misc]
        closed=np.arange(size) % 3 == 1,
        n_events=rng.integers(1, 300, size),
        unknown=rng.integers(0, 3, size),
        first_time=first,
        last_time=first + 10.0,
        partition=rng.integers(0, 8, size),
        first_offset=np.arange(size) * 2,
        last_offset=np.arange(size) * 2 + 1,
    )
    return snap, ScoreBatch(rng.normal(3.0, 2.0, size), residuals)


@pytest.mark.parametrize("top_k", [1, 3, 12])
def test_batch_records_equal_plain_records(top_k: int) -> None:
    rng = np.random.default_rng(top_k)
    snap, batch = batch_of(rng, 200)
    built = RecordBuilder(ACTIVITIES, IDENTITY, top_k=top_k).build(
        snap, batch, threshold=3.5, source_topic="events", now=1.9e9
    )
    encode = msgspec.json.Encoder().encode
    expected = [
        plain_record(snap, batch, i, top_k=top_k, threshold=3.5, now=1.9e9) for i in range(200)
    ]
    assert [encode(r) for r in built] == [encode(r) for r in expected]


def test_residual_map_omits_zeros_only() -> None:
    snap, batch = batch_of(np.random.default_rng(1), 50)
    built = RecordBuilder(ACTIVITIES, IDENTITY).build(
        snap, batch, threshold=3.5, source_topic=None, now=0.0
    )
    for record, row in zip(built, batch.residuals, strict=True):
        decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(record))
        full = {a: decoded["per_transition_residuals"].get(a, 0.0) for a in ACTIVITIES}
        assert full == pytest.approx(dict(zip(ACTIVITIES, row.tolist(), strict=True)), abs=1e-6)


def test_empty_batch() -> None:
    snap, batch = batch_of(np.random.default_rng(2), 0)
    assert (
        RecordBuilder(ACTIVITIES, IDENTITY).build(
            snap, batch, threshold=1.0, source_topic=None, now=0.0
        )
        == []
    )
