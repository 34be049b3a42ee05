from __future__ import annotations

import numpy as np
import pytest

from casewatch.state.codec import StateFormatError, decode_state, encode_row, encode_rows
from casewatch.state.columns import COLUMN_NAMES
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
    row = store.rows_for_events(["c"], [])[0]
    for step, activity in enumerate([0, 2, 2, 5, 6]):
        store.apply(
            np.array([row]), np.array([activity]), np.array([[step % 3, 4]]),
            np.array([100.0 + step]), np.array([3]), np.array([40 + step]), 7.5,
        )  # fmt: skip
    store.set_case_attributes(([row], [0], [12.5]), ([row], [0], [1]))
    return store, row


def test_round_trip_restores_every_column() -> None:
    store, row = filled_store()
    payload = encode_row(store, row)
    restored = CaseStore(SHAPE)
    target = restored.restore("c", decode_state(SHAPE, payload))
    for column in COLUMN_NAMES:
        np.testing.assert_array_equal(
            getattr(restored, column)[target], getattr(store, column)[row]
        )
    assert len(payload) < 120


def test_other_model_shape_and_truncation_are_refused() -> None:
    store, row = filled_store()
    payload = encode_row(store, row)
    other = StoreShape(activities=7, sequence_length=4, event_attribute_sizes=(3, 5))
    with pytest.raises(StateFormatError, match="does not match"):
        decode_state(other, payload)
    with pytest.raises(StateFormatError, match="truncated"):
        decode_state(SHAPE, payload[:30])


# Records as version 1 wrote them, before cases carried alert state: a changelog written then
# must still decode, with empty alert state.
GOLDEN_V1 = bytes.fromhex(
    "010600040002010105000000000000000100000000000000000059400000000000005a40000000000000"
    "1e400300000028000000000000002c00000000000000030000000100000002000200000005000100000006"
    "00020002000500010004000100040002000400000004000000484101000000"
)
WIDE_SHAPE = StoreShape(activities=300, sequence_length=3)
WIDE_GOLDEN_V1 = bytes.fromhex(
    "012c01030000000004000000000000000100000000000000000018400000000000002040000000000000"
    "00400100000009000000000000000c0000000000000002000700020000002b010100000007002c010700"
)
# The same states as version 2 writes them: the version 1 bytes with the alert state (u8 streak,
# bool alerted) after the scalars. The same state must always encode to the same bytes.
GOLDEN = bytes.fromhex(
    "020600040002010105000000000000000100000000000000000059400000000000005a40000000000000"
    "1e400300000028000000000000002c000000000000000000030000000100000002000200000005000100"
    "00000600020002000500010004000100040002000400000004000000484101000000"
)
WIDE_GOLDEN = bytes.fromhex(
    "022c01030000000004000000000000000100000000000000000018400000000000002040000000000000"
    "00400100000009000000000000000c00000000000000000002000700020000002b010100000007002c01"
    "0700"
)
# ``filled_store``'s case after three anomalous evaluations that raised its alert.
ALERTED_GOLDEN = bytes.fromhex(
    "020600040002010105000000000000000100000000000000000059400000000000005a40000000000000"
    "1e400300000028000000000000002c000000000000000301030000000100000002000200000005000100"
    "00000600020002000500010004000100040002000400000004000000484101000000"
)


def wide_store() -> tuple[CaseStore, int]:
    """Activity ids above 255 (a uint16 ring in memory), an untimed first event, no attributes."""
    store = CaseStore(WIDE_SHAPE)
    row = store.rows_for_events(["w"], [])[0]
    for step, activity in enumerate([299, 300, 7, 7]):
        store.apply(
            np.array([row]), np.array([activity]), np.zeros((1, 0), np.int64),
            np.array([np.nan if step == 0 else 5.0 + step]), np.array([1]),
            np.array([9 + step]), np.array([np.nan if step == 0 else 2.0]),
        )  # fmt: skip
    return store, row


def test_encoding_is_byte_identical_to_version_two() -> None:
    store, row = filled_store()
    assert encode_row(store, row) == GOLDEN
    wide, wide_row = wide_store()
    assert encode_row(wide, wide_row) == WIDE_GOLDEN
    store.anomalous_streak[row], store.alerted[row] = 3, True
    assert encode_row(store, row) == ALERTED_GOLDEN


def test_alert_state_round_trips() -> None:
    restored = CaseStore(SHAPE)
    row = restored.restore("c", decode_state(SHAPE, ALERTED_GOLDEN))
    assert (int(restored.anomalous_streak[row]), bool(restored.alerted[row])) == (3, True)
    assert encode_row(restored, row) == ALERTED_GOLDEN


@pytest.mark.parametrize("golden", [GOLDEN_V1, GOLDEN], ids=["version-1", "version-2"])
def test_records_of_cases_that_never_alerted_decode_with_empty_alert_state(golden: bytes) -> None:
    restored = CaseStore(SHAPE)
    # A row that held an alerted case before: restoring must overwrite its alert state too.
    row = restored.restore("c", decode_state(SHAPE, ALERTED_GOLDEN))
    assert restored.restore("c", decode_state(SHAPE, golden)) == row
    assert (int(restored.anomalous_streak[row]), bool(restored.alerted[row])) == (0, False)
    # Decoded, then written again: the version 2 record of the same state.
    assert encode_row(restored, row) == GOLDEN


def test_records_of_a_later_version_are_refused() -> None:
    with pytest.raises(StateFormatError, match="version 3, this build reads 1 to 2"):
        decode_state(SHAPE, b"\x03" + GOLDEN[1:])


def test_version_one_records_decode_to_the_state_they_were_written_from() -> None:
    restored = CaseStore(SHAPE)
    row = restored.restore("c", decode_state(SHAPE, GOLDEN_V1))
    assert restored.counts[row].tolist() == [1, 0, 2, 0, 0, 1]
    assert restored.unknown[row] == 1 and restored.n_events[row] == 5
    assert restored.sequences(np.array([row])).tolist() == [[2, 2, 5, 6]]
    assert restored.event_attributes(np.array([row])).tolist() == [[[1, 4], [2, 4], [0, 4], [1, 4]]]
    assert (restored.first_time[row], restored.last_time[row]) == (100.0, 104.0)
    assert (restored.last_seen[row], restored.partition[row]) == (7.5, 3)
    assert (restored.first_offset[row], restored.last_offset[row]) == (40, 44)
    assert restored.case_numeric[row].tolist() == [12.5]
    assert restored.case_categorical[row].tolist() == [1]
    wide = CaseStore(WIDE_SHAPE)
    wide_row = wide.restore("w", decode_state(WIDE_SHAPE, WIDE_GOLDEN_V1))
    assert wide.counts[wide_row, [7, 299]].tolist() == [2, 1]
    assert wide.unknown[wide_row] == 1
    assert wide.sequences(np.array([wide_row])).tolist() == [[300, 7, 7]]
    assert (wide.first_time[wide_row], wide.last_time[wide_row]) == (6.0, 8.0)
    assert (wide.first_offset[wide_row], wide.last_offset[wide_row]) == (9, 12)


def test_records_of_many_rows_are_those_of_each_row() -> None:
    store, row = filled_store()
    unknown_only, other = store.rows_for_events(["u", "o"], [])
    store.apply(
        np.array([unknown_only, other]), np.array([6, 3]), np.array([[3, 5], [0, 0]]),
        np.array([np.nan, 5.0]), np.array([0, 1]), np.array([7, 8]), np.array([1.0, 2.0]),
    )  # fmt: skip
    rows = np.array([other, row, unknown_only])
    records = encode_rows(store, rows)
    assert records[1] == GOLDEN
    assert records == [encode_row(store, r) for r in rows.tolist()]
    assert encode_rows(store, np.zeros(0, dtype=np.int64)) == []
    for source, record in zip(rows.tolist(), records, strict=True):
        restored = CaseStore(SHAPE)
        target = restored.restore("x", decode_state(SHAPE, record))
        for column in COLUMN_NAMES:
            np.testing.assert_array_equal(
                getattr(restored, column)[target], getattr(store, column)[source]
            )
