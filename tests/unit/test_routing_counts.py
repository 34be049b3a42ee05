"""The router's running totals: events, unknown activities, and per-event attribute values
present and unknown, counted per batch with array comparisons over every attribute column, and
kept across a model swap."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from casewatch import Scorer, StreamingEvaluator, StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.offline.train import TrainOptions, train
from tests.unit.conftest import USERS

REGIONS = {"A": "north", "B": "south", "C": "north", "D": "east", "E": "south"}


def two_attribute_trace(case_id: str, activities: str) -> Trace:
    events = [
        StreamingEvent(case_id, name, attributes={"user": USERS[name], "region": REGIONS[name]})
        for name in activities
    ]
    return Trace(case_id, events, False, None, ())


@pytest.fixture(scope="module")
def two_attribute_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(5)
    traces = [two_attribute_trace(f"n{i}", rng.choice(["ABCE", "ABDE"])) for i in range(300)]
    out = tmp_path_factory.mktemp("two") / "two.onnx"
    train(traces, out, TrainOptions(name="two", version="1", sequence_length=8), source="two")
    return out


def test_values_are_counted_per_attribute_column(two_attribute_model: Path) -> None:
    evaluator = StreamingEvaluator(two_attribute_model)
    assert [a.name for a in evaluator.scorer.contract.event_attributes] == ["region", "user"]
    evaluator.on_events(
        [
            StreamingEvent("c1", "A", attributes={"user": "ann", "region": "north"}),  # known
            StreamingEvent("c1", "B", attributes={"user": "zoe", "region": "south"}),  # 1 unknown
            StreamingEvent("c1", "Q", attributes={"user": "bob"}),  # region missing
            StreamingEvent("c2", "A", attributes={"region": 7, "other": "x"}),  # 7 unknown
            StreamingEvent("c2", "C", attributes={}),  # nothing to count
        ]
    )
    counts = evaluator.routing_counts
    assert counts.events == 5
    assert counts.unknown_activities == 1 == evaluator.unknown_activity_events
    assert counts.attribute_values == 6
    assert counts.unknown_attribute_values == 2


def test_counts_carry_over_a_model_swap(two_attribute_model: Path, tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(two_attribute_model)
    counts = evaluator.routing_counts
    evaluator.on_events([StreamingEvent("c", "A", attributes={"user": "nobody"})])
    evaluator.swap_scorer(Scorer(tiny_model))
    evaluator.on_events([StreamingEvent("c", "Z", attributes={"user": "nobody"})])
    assert evaluator.routing_counts is counts
    assert (counts.events, counts.unknown_activities) == (2, 1)
    assert (counts.attribute_values, counts.unknown_attribute_values) == (2, 2)


def test_a_model_without_event_attributes_counts_no_values(tmp_path: Path) -> None:
    traces = [
        Trace(f"n{i}", [StreamingEvent(f"n{i}", name) for name in "ABCE"], False, None, ())
        for i in range(40)
    ]
    out = tmp_path / "plain.onnx"
    train(traces, out, TrainOptions(name="plain", version="1", sequence_length=8), source="x")
    evaluator = StreamingEvaluator(out)
    assert not evaluator.scorer.contract.event_attributes
    evaluator.on_events([StreamingEvent("c", "A", attributes={"user": "ann"})])
    counts = evaluator.routing_counts
    assert (counts.events, counts.attribute_values, counts.unknown_attribute_values) == (1, 0, 0)
