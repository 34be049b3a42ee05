from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.scoring.contract import (
    CaseAttribute,
    Contract,
    InputBinding,
    ScoreOutput,
    embed_contract,
)
from casewatch.state.store import CaseStore, StoreShape


def apply_one(store: CaseStore, case_id: str, activity: int, now: float = 0.0) -> int:
    row = store.row_for_event(case_id, False)
    rows = np.array([row])
    store.apply(rows, np.array([activity]), np.zeros((1, 0), np.int64),
                np.array([np.nan]), np.array([0]), np.array([5]), now)  # fmt: skip
    return row


def test_ring_keeps_the_last_k_in_order() -> None:
    store = CaseStore(StoreShape(activities=10, sequence_length=4))
    for activity in [1, 2, 3, 4, 5, 6]:
        row = apply_one(store, "c", activity)
    assert store.sequences(np.array([row])).tolist() == [[3, 4, 5, 6]]
    assert store.counts[row, 1:7].tolist() == [1] * 6
    short = apply_one(store, "d", 7)
    assert store.sequences(np.array([short])).tolist() == [[11, 11, 11, 7]]


def test_memory_per_case_does_not_grow_with_case_length() -> None:
    def footprint(length: int) -> tuple[int, int]:
        store = CaseStore(
            StoreShape(activities=30, sequence_length=32, event_attribute_sizes=(50,))
        )
        for case in range(500):
            for step in range(length):
                apply_one(store, f"case-{case}", step % 30)
        return store.nbytes(), store.capacity

    assert footprint(5) == footprint(200)


def test_released_rows_are_reset_and_recycled() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2), capacity=2)
    row = apply_one(store, "c", 1)
    assert store.take("c") == row and "c" not in store
    store.release(np.array([row]))
    again = store.row_for_event("d", False)
    assert again == row
    assert store.n_events[row] == 0 and store.counts[row].sum() == 0
    assert store.sequences(np.array([row])).tolist() == [[4, 4]]


def test_columns_double_when_full() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2), capacity=2)
    for case in range(5):
        apply_one(store, f"c{case}", 0)
    assert store.capacity == 8 and len(store) == 5
    assert store.open_cases() == [f"c{i}" for i in range(5)]


@pytest.fixture
def attribute_model(tmp_path: Path) -> Path:
    """A scorer whose score is the case's numeric attribute plus its category id."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["category"], ["category_f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["amount", "category_f"], ["score"]),
        ],
        "attributes",
        [
            helper.make_tensor_value_info("amount", TensorProto.FLOAT, ["b", 1]),
            helper.make_tensor_value_info("category", TensorProto.INT64, ["b", 1]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["b", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    embed_contract(
        model,
        Contract(
            name="attrs", version="1", activities=["A"], threshold=100.0,
            case_attributes=[
                CaseAttribute(name="amount", kind="numeric"),
                CaseAttribute(name="tier", kind="categorical", values=["gold", "silver"]),
            ],
            inputs=[InputBinding(name="amount", features=["case_numeric"]),
                    InputBinding(name="category", features=["case_categorical"])],
            score=ScoreOutput(name="score"),
        ),
    )  # fmt: skip
    path = tmp_path / "attrs.onnx"
    onnx.save(model, str(path))
    return path


def test_case_attributes_merge_latest_event_wins(attribute_model: Path) -> None:
    evaluator = StreamingEvaluator(attribute_model)
    evaluator.on_events(
        [
            StreamingEvent("c", "A", attributes={"amount": 10, "tier": "silver"}),
            StreamingEvent("c", "A", attributes={"amount": 25}),
            StreamingEvent("c", "A", attributes={"note": "ignored"}),
        ]
    )
    result = evaluator.score_case("c")
    assert result is not None
    assert result.trace_score == 26.0  # amount 25 from the latest event + tier id 1
    evaluator.on_events([StreamingEvent("c", "A", attributes={"tier": "platinum"})])
    unknown_tier = evaluator.score_case("c")
    assert unknown_tier is not None and unknown_tier.trace_score == 27.0  # unknown id = 2


def test_attribute_values_beyond_float_range_read_as_missing(attribute_model: Path) -> None:
    # A JSON integer of a few hundred digits decodes to a Python int that float() refuses and,
    # past 4300 digits, one that str() refuses: neither may stop the batch.
    evaluator = StreamingEvaluator(attribute_model)
    huge = 10**400
    evaluator.on_events(
        [
            StreamingEvent("c", "A", attributes={"amount": huge, "tier": "gold"}),
            StreamingEvent("d", "A", attributes={"amount": 5, "tier": 10**5000}),
        ]
    )
    big = evaluator.score_case("c")
    assert big is not None and math.isnan(big.trace_score)
    unknown = evaluator.score_case("d")
    assert unknown is not None and unknown.trace_score == 7.0  # amount 5 + unknown id 2
