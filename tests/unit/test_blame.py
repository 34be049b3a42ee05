"""Blames in evaluation records: anomalous evaluations name their blamed events and what was
expected there, normal ones carry null, and the builder and the byte encoder agree."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.errors import ModelError
from casewatch.events import Blame, ModelIdentity
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.replay import replay
from casewatch.scoring.blame import END_LABEL, UNKNOWN_LABEL, Blamer, LabelTable
from casewatch.scoring.contract import CategoricalAttribute, Contract, InputBinding, ScoreOutput
from casewatch.scoring.explanations import PositionExplanations
from casewatch.scoring.features import Snapshot
from casewatch.scoring.record_bytes import RecordEncoder
from casewatch.scoring.records import RecordBuilder
from casewatch.scoring.scorer import ScoreBatch, Scorer
from tests.conftest import BUNDLED_LOG

ACTIVITIES = ["Create PO", "Release PO", "Create PR", "Pay"]
PAD = len(ACTIVITIES) + 1
RING = 4
IDENTITY = ModelIdentity("m", "1", "ab" * 32)
CONTRACT = Contract(
    name="m", version="1", activities=ACTIVITIES, sequence_length=RING,
    event_attributes=[CategoricalAttribute(name="user", values=["ann", "bob"])],
    inputs=[InputBinding(name="sequence", features=["sequence"])],
    score=ScoreOutput(name="score"), threshold=2.0,
)  # fmt: skip


def _snapshot(n_events: list[int]) -> Snapshot:
    n = len(n_events)
    return Snapshot(
        case_ids=[f"c{i}" for i in range(n)], triggers=["close"] * n,
        closed=np.ones(n, np.bool_), n_events=np.asarray(n_events, np.int64),
        unknown=np.zeros(n, np.int64), first_time=np.full(n, np.nan),
        last_time=np.full(n, np.nan), partition=np.zeros(n, np.int64),
        first_offset=np.arange(n, dtype=np.int64), last_offset=np.arange(n, dtype=np.int64),
    )  # fmt: skip


def _hand_made() -> tuple[Snapshot, ScoreBatch]:
    """Three cases: a long one blamed on an activity and an attribute, one blamed on its end,
    and a normal one."""
    surprise = np.zeros((3, RING + 1), np.float32)
    feature = np.zeros((3, RING + 1), np.int64)
    expected = np.zeros((3, RING + 1), np.int64)
    expected_p = np.full((3, RING + 1), 0.5, np.float32)
    observed_p = np.full((3, RING + 1), 0.25, np.float32)
    surprise[0, 2], expected[0, 2], expected_p[0, 2], observed_p[0, 2] = 4.0, 0, 0.93, 0.001
    surprise[0, 3], feature[0, 3], expected[0, 3], expected_p[0, 3] = 3.0, 1, 0, 0.8
    surprise[0, 1] = 1.0  # a third odd position, beyond top_k
    surprise[1, RING], expected[1, RING], expected_p[1, RING] = 5.0, 3, 0.81
    surprise[2, 3] = 0.5  # below the threshold: the case is normal
    sequence = np.asarray([[0, 1, 2, 3], [PAD, PAD, 0, 1], [PAD, 0, 1, 3]], np.int64)
    attributes = np.zeros((3, RING, 1), np.int64)
    attributes[0, 3, 0] = 1
    explanation = PositionExplanations(
        surprise, feature, expected, expected_p, observed_p, sequence, attributes
    )
    scores = surprise.max(axis=1).astype(np.float64)
    residuals = np.zeros((3, len(ACTIVITIES)), np.float32)
    return _snapshot([6, 2, 3]), ScoreBatch(scores, residuals, explanation)


def _build(snap: Snapshot, batch: ScoreBatch, top_k: int = 2) -> tuple[list[bytes], list[bytes]]:
    blamer = Blamer(CONTRACT, top_k=top_k)
    kwargs = {"threshold": 2.0, "source_topic": "in", "now": 1.0}
    built = RecordBuilder(ACTIVITIES, IDENTITY, blamer=blamer).build(snap, batch, **kwargs)  # type: ignore[arg-type]
    encoded = RecordEncoder(ACTIVITIES, IDENTITY, blamer=blamer).encode(snap, batch, **kwargs)  # type: ignore[arg-type]
    return [msgspec.json.encode(e) for e in built], encoded


def test_anomalous_records_name_the_blamed_events_and_normal_ones_carry_null() -> None:
    built, encoded = _build(*_hand_made())
    assert encoded == built
    long_case, ended, normal = (json.loads(r) for r in built)
    assert normal["anomalous"] is False and normal["explanation"] is None
    activity, attribute = long_case["explanation"]
    # The ring holds the last 4 of 6 events: its third column is the case's 5th event.
    assert activity == {
        "position": 5, "activity": "Create PR", "attribute": None, "observed": "Create PR",
        "expected": "Create PO", "expected_probability": pytest.approx(0.93),
        "observed_probability": pytest.approx(0.001), "surprise": 4.0,
        "reason": "Create PR after Release PO; expected Create PO (0.93)",
    }  # fmt: skip
    assert attribute["position"] == 6
    assert (attribute["attribute"], attribute["observed"], attribute["expected"]) == (
        "user", "bob", "ann"
    )  # fmt: skip
    assert attribute["reason"] == "user bob on Pay; expected ann (0.80)"
    (end,) = ended["explanation"]
    assert (end["position"], end["activity"], end["attribute"]) == (3, END_LABEL, None)
    assert end["reason"] == "case ended after Release PO; expected Pay (0.81)"


def test_top_k_bounds_the_blames_and_zero_switches_them_off() -> None:
    snap, batch = _hand_made()
    one, _ = _build(snap, batch, top_k=1)
    assert [b["position"] for b in json.loads(one[0])["explanation"]] == [5]
    off, encoded = _build(snap, batch, top_k=0)
    assert encoded == off
    assert all(json.loads(r)["explanation"] is None for r in off)


def test_equal_surprises_blame_the_earlier_event_first() -> None:
    snap, batch = _hand_made()
    assert batch.explanation is not None
    batch.explanation.surprise[0, 1:4] = 4.0
    built, encoded = _build(snap, batch, top_k=3)
    assert encoded == built
    assert [b["position"] for b in json.loads(built[0])["explanation"]] == [4, 5, 6]


def test_a_model_without_explanation_outputs_writes_null_everywhere() -> None:
    snap, batch = _hand_made()
    plain = ScoreBatch(batch.scores, batch.residuals)
    built, encoded = _build(snap, plain)
    assert encoded == built
    assert all(json.loads(r)["explanation"] is None for r in built)


def _random(n: int, seed: int) -> tuple[Snapshot, ScoreBatch]:
    rng = np.random.default_rng(seed)
    width = RING + 1
    surprise = np.where(rng.random((n, width)) < 0.4, rng.gamma(2.0, 1.0, (n, width)), 0.0)
    explanation = PositionExplanations(
        surprise.astype(np.float32), rng.integers(0, 2, (n, width)),
        rng.integers(0, len(ACTIVITIES) + 2, (n, width)), rng.random((n, width), np.float32),
        rng.random((n, width), np.float32) / 10, rng.integers(0, PAD + 1, (n, RING)),
        rng.integers(0, 4, (n, RING, 1)),
    )  # fmt: skip
    residuals = rng.random((n, len(ACTIVITIES))).astype(np.float32)
    scores = surprise.max(axis=1)
    return _snapshot(rng.integers(1, 12, n).tolist()), ScoreBatch(scores, residuals, explanation)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_builder_and_encoder_write_the_same_bytes(seed: int) -> None:
    built, encoded = _build(*_random(400, seed), top_k=3)
    assert encoded == built
    parsed = [json.loads(r) for r in built]
    assert any(r["explanation"] for r in parsed)
    assert all(r["explanation"] is None for r in parsed if not r["anomalous"])


@pytest.fixture(scope="module")
def held_out_finals(model_path: Path) -> tuple[list[Trace], dict[str, object]]:
    traces = [t for t in read_log(BUNDLED_LOG) if t.events]
    held_out = traces[len(traces) // 2 :][:1200]
    finals: dict[str, object] = {}
    replay(held_out, Scorer(model_path), sink=lambda e: finals.update({e.case_id: e}))
    return held_out, finals


@pytest.mark.parametrize(
    ("anomaly", "share"), [("Insert", 1.0), ("Attribute", 1.0), ("Rework", 0.8)]
)
def test_the_first_blame_falls_on_an_injected_event(
    held_out_finals: tuple[list[Trace], dict[str, object]], anomaly: str, share: float
) -> None:
    held_out, finals = held_out_finals
    flagged = [
        (t, finals[t.case_id]) for t in held_out
        if t.anomaly_type == anomaly and getattr(finals[t.case_id], "anomalous", False)
    ]  # fmt: skip
    assert len(flagged) >= 10
    hits = 0
    for trace, evaluation in flagged:
        blames: list[Blame] = evaluation.explanation  # type: ignore[attr-defined]
        assert blames and 1 <= len(blames) <= 2
        first = blames[0]
        hits += first.position - 1 in trace.anomalous_positions
        assert (first.attribute is not None) == (anomaly == "Attribute")
        assert first.expected != first.observed
        assert 0 <= first.observed_probability < first.expected_probability <= 1
    assert hits >= share * len(flagged)
    normal = [finals[t.case_id] for t in held_out if not t.label]
    assert all(e.explanation is None for e in normal if not e.anomalous)  # type: ignore[attr-defined]


class _FailingToExplain:
    explains = True
    threshold = 2.0

    def explain(self, features: object, rows: object) -> PositionExplanations:
        raise ModelError("m.onnx: explaining failed: boom")


def test_a_failing_explanation_run_leaves_the_scores_standing() -> None:
    snap, batch = _hand_made()
    plain = ScoreBatch(batch.scores, batch.residuals)
    blamer = Blamer(CONTRACT)
    assert blamer.explain(_FailingToExplain(), plain, {}, None) is plain  # type: ignore[arg-type]
    built, encoded = _build(snap, plain)
    assert encoded == built
    assert [json.loads(r)["anomalous"] for r in built] == [True, True, False]


def test_only_the_anomalous_rows_are_explained_and_mapped_back_to_their_cases() -> None:
    snap, batch = _hand_made()
    assert batch.explanation is not None
    asked: list[list[int]] = []

    class Explaining:
        explains = True
        threshold = 2.0

        def explain(self, features: object, rows: np.ndarray) -> PositionExplanations:  # type: ignore[type-arg]
            asked.append(rows.tolist())
            full = batch.explanation
            assert full is not None
            return PositionExplanations(
                full.surprise[[0, 1]], full.feature[[0, 1]], full.expected[[0, 1]],
                full.expected_probability[[0, 1]], full.observed_probability[[0, 1]],
                full.sequence[[0, 1]], None if full.event_attributes is None
                else full.event_attributes[[0, 1]],
            )  # fmt: skip

    plain = ScoreBatch(batch.scores, batch.residuals)
    # Isolation kept feature rows 0, 2 and 3 of four; the first two kept cases are anomalous.
    explained = Blamer(CONTRACT).explain(Explaining(), plain, {}, np.asarray([0, 2, 3]))  # type: ignore[arg-type]
    assert asked == [[0, 2]]
    built, encoded = _build(snap, explained)
    full, _ = _build(snap, batch)
    assert encoded == built == full


def test_a_case_longer_than_the_ring_counts_positions_from_its_start(tiny_model: Path) -> None:
    names = "AB" + "C" * 20 + "AE"  # the ring holds 8 events; "A" after "C" is odd
    events = [
        StreamingEvent("long", n, attributes={"user": "ann"}, close=i == len(names) - 1)
        for i, n in enumerate(names)
    ]
    (evaluation,) = StreamingEvaluator(tiny_model).on_events(events)
    assert evaluation.anomalous and evaluation.explanation
    blamed = {b.position: b for b in evaluation.explanation}
    assert 23 in blamed  # the second "A", 1-based, counted with n_events
    assert blamed[23].activity == "A"
    assert blamed[23].reason.startswith("A after C; expected ")


def test_a_label_table_is_reused_unchanged_across_batches() -> None:
    table = LabelTable(["a", "b"])
    first = table.of(np.array([0, 1, 2, -1], np.int64))
    assert first.tolist() == ["a", "b", UNKNOWN_LABEL, UNKNOWN_LABEL]
    first[:] = END_LABEL  # the blames overwrite their copies (the end of a case, say)
    assert table.of(np.array([1, 0], np.int64)).tolist() == ["b", "a"]
