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
from casewatch.state.columns import COLUMN_NAMES, COLUMNS
from casewatch.state.store import CaseStore, StoreShape


def apply_one(store: CaseStore, case_id: str, activity: int, now: float = 0.0) -> int:
    row = store.rows_for_events([case_id], [])[0]
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
    again = store.rows_for_events(["d"], [])[0]
    assert again == row
    assert store.n_events[row] == 0 and store.counts[row].sum() == 0
    assert store.sequences(np.array([row])).tolist() == [[4, 4]]


def test_columns_double_when_full() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2), capacity=2)
    for case in range(5):
        apply_one(store, f"c{case}", 0)
    assert store.capacity == 8 and len(store) == 5
    assert store.open_cases() == [f"c{i}" for i in range(5)]


def test_scalar_columns_come_first_as_in_a_changelog_record() -> None:
    scalars = [column.scalar for column in COLUMNS]
    assert scalars == sorted(scalars, reverse=True)


def test_every_declared_column_is_allocated_typed_and_reset() -> None:
    shape = StoreShape(activities=300, sequence_length=3, event_attribute_sizes=(4, 9),
                       numeric_case_attributes=2, categorical_case_attributes=1)  # fmt: skip
    store = CaseStore(shape, capacity=2)
    assert set(CaseStore.__annotations__) == COLUMN_NAMES
    for column in COLUMNS:
        cells = getattr(store, column.name)
        assert cells.shape == (2, *column.row_shape(shape)) and cells.dtype == column.dtype(shape)
    empty = {c.name: getattr(store, c.name)[0].copy() for c in COLUMNS}
    row = apply_one(store, "c", 299, now=4.0)
    store.set_case_attributes(([row], [1], [2.5]), ([row], [0], [3]))
    store.take("c")
    store.release(np.array([row]))
    for name, cells in empty.items():
        np.testing.assert_array_equal(getattr(store, name)[row], cells)
    assert store.nbytes() == sum(getattr(store, c.name).nbytes for c in COLUMNS)


def test_cases_leave_the_index_least_recent_first() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2))
    rows = {case: apply_one(store, case, 0) for case in "abcd"}
    apply_one(store, "a", 1)  # a is now the most recently seen
    assert store.take_least_recent(2).tolist() == [rows["b"], rows["c"]]
    assert list(store.index) == ["d", "a"]
    store.take_rows(np.array([rows["a"]]))
    assert list(store.index) == ["d"] and store.case_ids_of(np.array([rows["a"]])) == ["a"]


def test_a_last_event_takes_its_case_out_of_the_index() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2))
    rows = store.rows_for_events(["a", "c", "b", "c", "c", "a", "d"], [1, 4, 5])
    # c's first event closes it, its next one starts afresh in another row, which closes too.
    assert rows[0] == rows[5] and rows[1] != rows[3] and rows[3] == rows[4]
    assert len(set(rows)) == 5
    assert list(store.index) == ["b", "d"]
    assert store.case_ids_of(np.array([rows[1], rows[4], rows[5]])) == ["c", "c", "a"]
    assert store.rows_for_events(["b", "e"], [0, 1]) == [rows[2], 5]
    assert list(store.index) == ["d"]


def test_discarding_partitions_frees_their_rows() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2))
    for case, partition in [("a", 0), ("b", 1), ("c", 2), ("d", 1)]:
        row = store.rows_for_events([case], [])[0]
        store.apply(np.array([row]), np.array([0]), np.zeros((1, 0), np.int64),
                    np.array([np.nan]), np.array([partition]), np.array([1]), 0.0)  # fmt: skip
    assert store.discard_partitions([1, 5]) == 2
    assert list(store.index) == ["a", "c"]
    assert store.discard_partitions([]) == 0


def test_restore_keeps_an_open_case_in_place_and_load_opens_new_ones() -> None:
    store = CaseStore(StoreShape(activities=3, sequence_length=2))
    apply_one(store, "a", 0)
    apply_one(store, "b", 0)
    cells = [getattr(store, c.name)[store.index["b"]].copy() for c in COLUMNS]
    store.restore("a", cells)
    assert list(store.index) == ["a", "b"]
    store.restore("z", cells)
    assert list(store.index) == ["a", "b", "z"]
    rows = store.load(["x", "y"], {"n_events": np.array([4, 6])})
    assert list(store.index)[-2:] == ["x", "y"] and store.n_events[rows].tolist() == [4, 6]
    with pytest.raises(ValueError, match="new cases only"):
        store.load(["a"], {})


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
