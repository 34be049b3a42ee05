from __future__ import annotations

import numpy as np
import pytest

from casewatch.state.codec import StateFormatError, decode_into, encode_row
from casewatch.state.store import CaseStore, StoreShape

SHAPE = StoreShape(
    activities=6,
    sequence_length=4,
    event_attribute_sizes=(3, 5),
    numeric_case_attributes=1,
    categorical_case_attributes=1,
)


def filled_store() -> tuple[CaseStore, int]:
    store = CaseStore(SHAPE)
    row = store.open_row("c")
    store.index["c"] = row
    for step, activity in enumerate([0, 2, 2, 5, 6]):
        store.apply(
            np.array([row]), np.array([activity]), np.array([[step % 3, 4]]),
            np.array([100.0 + step]), np.array([3]), np.array([40 + step]), 7.5,
        )  # fmt: skip
    store.case_numeric[row] = 12.5
    store.case_categorical[row] = 1
    return store, row


def test_round_trip_restores_every_column() -> None:
    store, row = filled_store()
    payload = encode_row(store, row)
    restored = CaseStore(SHAPE)
    target = restored.open_row("c")
    decode_into(restored, target, payload)
    for column in ("counts", "ring", "attribute_ring", "case_numeric", "case_categorical",
                   "n_events", "unknown", "first_time", "last_time", "last_seen",
                   "partition", "first_offset", "last_offset"):  # fmt: skip
        np.testing.assert_array_equal(
            getattr(restored, column)[target], getattr(store, column)[row]
        )
    assert len(payload) < 120


def test_other_model_shape_and_truncation_are_refused() -> None:
    store, row = filled_store()
    payload = encode_row(store, row)
    other = CaseStore(StoreShape(activities=7, sequence_length=4, event_attribute_sizes=(3, 5)))
    with pytest.raises(StateFormatError, match="does not match"):
        decode_into(other, other.open_row("c"), payload)
    with pytest.raises(StateFormatError, match="truncated"):
        decode_into(CaseStore(SHAPE), 0, payload[:30])
