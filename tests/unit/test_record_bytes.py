"""RecordEncoder writes the bytes msgspec writes for RecordBuilder's records of the same batch."""

from __future__ import annotations

import dataclasses
import json

import msgspec
import numpy as np
import pytest

from casewatch.events import ModelIdentity
from casewatch.scoring.features import Snapshot
from casewatch.scoring.record_bytes import RecordEncoder
from casewatch.scoring.records import RecordBuilder
from casewatch.scoring.scorer import ScoreBatch

ODD_LABELS = ["Create PR", 'say "hi"', "back\\slash", "é\u2028ü", "\x01ctl\t", "100%s", "🙂"]
ODD_CASES = ["plain", 'q"\\', "ü\n\x00", "%s%b%%", "\x7f\u2029"]
IDENTITY = ModelIdentity('name "%s"', "1.0\\", "ab" * 32)


def _batch(n: int, labels: int, seed: int) -> tuple[Snapshot, ScoreBatch]:
    rng = np.random.default_rng(seed)
    residuals = np.abs(rng.normal(size=(n, labels))).astype(np.float32)
    residuals[residuals < 0.9] = 0.0
    scores = rng.normal(2.0, 1.0, size=n)
    first = rng.uniform(1.7e9, 1.8e9, size=n)
    first[::4] = np.nan
    snap = Snapshot(
        case_ids=[f"{ODD_CASES[i % len(ODD_CASES)]}-{i}" for i in range(n)],
        triggers=[("event", "close", "timeout", "evicted", "request")[i % 5] for i in range(n)],
        closed=rng.random(n) < 0.5,
        n_events=rng.integers(1, 50, size=n),
        unknown=rng.integers(0, 3, size=n),
        first_time=first,
        last_time=first + 10.0,
        partition=rng.integers(0, 8, size=n),
        first_offset=np.arange(n) * 7,
        last_offset=np.arange(n) * 7 + 3,
    )
    return snap, ScoreBatch(scores=scores, residuals=residuals)


def _both(
    labels: list[str], snap: Snapshot, batch: ScoreBatch, topic: str | None = 'in"%'
) -> tuple[list[bytes], list[bytes]]:
    kwargs = {"threshold": 2.25, "source_topic": topic, "now": 1795530097.64}
    old = RecordBuilder(labels, IDENTITY, top_k=3).build(snap, batch, **kwargs)  # type: ignore[arg-type]
    new = RecordEncoder(labels, IDENTITY, top_k=3).encode(snap, batch, **kwargs)  # type: ignore[arg-type]
    return [msgspec.json.encode(e) for e in old], new


@pytest.mark.parametrize("n_labels", [1, 7, 20, 200])
def test_same_records_as_the_builder(n_labels: int) -> None:
    labels = [f"{ODD_LABELS[i % len(ODD_LABELS)]}#{i}" for i in range(n_labels)]
    snap, batch = _batch(300, n_labels, seed=n_labels)
    old, new = _both(labels, snap, batch)
    assert [json.loads(r) for r in new] == [json.loads(r) for r in old]
    # Same bytes too, so the evaluation ids and field order are the builder's.
    assert new == old


def test_unusual_strings_parse_back() -> None:
    snap, batch = _batch(len(ODD_CASES), len(ODD_LABELS), seed=3)
    snap = Snapshot(**{**{f: getattr(snap, f) for f in snap.__slots__}, "case_ids": ODD_CASES})
    batch.residuals[:] = 1.5
    records = [json.loads(r) for r in RecordEncoder(ODD_LABELS, IDENTITY).encode(
        snap, batch, threshold=1.0, source_topic=None, now=1.0
    )]  # fmt: skip
    assert [r["case_id"] for r in records] == ODD_CASES
    assert all(set(r["per_transition_residuals"]) == set(ODD_LABELS) for r in records)
    assert records[0]["model"] == {"name": 'name "%s"', "version": "1.0\\", "sha256": "ab" * 32}
    assert records[0]["source"]["topic"] is None


def test_zero_residuals_are_omitted() -> None:
    labels = ["a", "b", "c"]
    snap, batch = _batch(2, 3, seed=1)
    batch.residuals[:] = [[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    first, second = (json.loads(r) for r in RecordEncoder(labels, IDENTITY).encode(
        snap, batch, threshold=1.0, source_topic="t", now=1.0
    ))  # fmt: skip
    assert first["per_transition_residuals"] == {"b": 2.0}
    assert first["top_transitions"] == [{"transition": "b", "residual": 2.0}]
    assert second["per_transition_residuals"] == {}
    assert second["top_transitions"] == []


def test_nan_and_infinite_scores_as_the_builder_writes_them() -> None:
    labels = ["a", "b"]
    snap, batch = _batch(4, 2, seed=2)
    batch.scores[:] = [np.nan, np.inf, -np.inf, 1.0]
    batch.residuals[:] = [[np.inf, 1.0], [np.nan, 0.5], [0.0, 0.0], [1.0, 1.0]]
    old, new = _both(labels, snap, batch)
    assert new == old
    parsed = [json.loads(r) for r in new]
    assert [r["trace_score"] for r in parsed] == [None, None, None, 1.0]
    assert [r["anomalous"] for r in parsed] == [False, True, False, False]
    assert parsed[0]["per_transition_residuals"] == {"a": None, "b": 1.0}


def test_empty_batch() -> None:
    snap, batch = _batch(0, 4, seed=0)
    assert (
        RecordEncoder(list("abcd"), IDENTITY).encode(
            snap, batch, threshold=1.0, source_topic="t", now=1.0
        )
        == []
    )


def test_ties_in_the_top_transitions_go_to_the_lower_id() -> None:
    labels = ["a", "b", "c", "d"]
    snap, batch = _batch(1, 4, seed=5)
    batch.residuals[:] = [[1.0, 2.0, 2.0, 2.0]]
    (record,) = (json.loads(r) for r in RecordEncoder(labels, IDENTITY, top_k=2).encode(
        snap, batch, threshold=1.0, source_topic="t", now=1.0
    ))  # fmt: skip
    assert [t["transition"] for t in record["top_transitions"]] == ["b", "c"]


@pytest.mark.parametrize("seed", [1, 2])
def test_same_records_for_plain_ids_and_one_residual_per_case(seed: int) -> None:
    """The shortcuts of the usual every-event batch: ids that need no escaping, one nonzero
    residual or none per case, every case with event times."""
    snap, batch = _batch(200, 12, seed=seed)
    rng = np.random.default_rng(seed)
    one = np.zeros_like(batch.residuals)
    at = np.flatnonzero(rng.random(200) < 0.7)
    one[at, rng.integers(0, 12, size=at.size)] = rng.uniform(0.1, 5.0, size=at.size)
    times = rng.uniform(1.7e9, 1.8e9, size=200)
    snap = dataclasses.replace(
        snap, case_ids=[f"case-{i}" for i in range(200)], first_time=times, last_time=times + 1
    )
    old, new = _both([f"a{i}" for i in range(12)], snap, ScoreBatch(batch.scores, one))
    assert new == old


def test_an_identity_with_braces_keeps_its_evaluation_ids() -> None:
    identity = ModelIdentity("m", "1", "{0}|{}")
    snap, batch = _batch(10, 3, seed=5)
    kwargs = {"threshold": 2.25, "source_topic": None, "now": 1.0}
    old = RecordBuilder(["a", "b", "c"], identity).build(snap, batch, **kwargs)  # type: ignore[arg-type]
    new = RecordEncoder(["a", "b", "c"], identity).encode(snap, batch, **kwargs)  # type: ignore[arg-type]
    assert new == [msgspec.json.encode(e) for e in old]


def test_an_empty_batch_has_no_records() -> None:
    snap, batch = _batch(0, 3, seed=1)
    assert _both(["a", "b", "c"], snap, batch) == ([], [])
