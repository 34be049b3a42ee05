"""Changelog bookkeeping and the replay guard, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.state.codec import StateFormatError
from casewatch.state.restore import ReplayGuard


def event(case: str, name: str, offset: int, *, close: bool = False) -> StreamingEvent:
    return StreamingEvent(case, name, close=close, partition=offset % 2, offset=offset)


def test_changes_list_tombstones_then_states_of_touched_cases(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, track_changes=True)
    evaluator.on_events([event("a", "A", 0), event("b", "A", 1), event("b", "B", 3, close=True)])
    changes = evaluator.take_state_changes()
    assert changes.departed == [("b", 1, 3)]
    assert [(case, partition) for case, partition, _ in changes.states] == [("a", 0)]
    assert len(evaluator.take_state_changes()) == 0
    evaluator.on_events([event("a", "B", 2)])
    assert [case for case, _, _ in evaluator.take_state_changes().states] == ["a"]


def test_restored_state_scores_like_the_original(tiny_model: Path) -> None:
    original = StreamingEvaluator(tiny_model, track_changes=True)
    original.on_events([event("c", name, i) for i, name in enumerate("ABC")])
    ((case, _, state),) = original.take_state_changes().states
    restored = StreamingEvaluator(tiny_model)
    restored.restore_case(case, state)
    closing = [event("c", "E", 3, close=True)]
    expected = original.on_events(closing)[0]
    actual = restored.on_events(closing)[0]
    assert (actual.n_events, actual.trace_score) == (expected.n_events, expected.trace_score)
    assert actual.evaluation_id == expected.evaluation_id


def test_dropped_partitions_leave_no_pending_tombstones(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, track_changes=True)
    evaluator.on_events([event("a", "A", 0, close=True), event("b", "A", 1, close=True)])
    evaluator.drop_partitions({1})
    assert [d[0] for d in evaluator.take_state_changes().departed] == ["a"]


def test_replay_guard_skips_what_restored_state_reflects(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, track_changes=True)
    evaluator.on_events([event("open", "A", 10), event("open", "B", 12)])
    guard = ReplayGuard(evaluator)
    guard.restored(0, 12)
    guard.closed(0, "gone", 14)
    assert guard.windows == {0: 15}
    assert guard.already_applied(0, 10, "open")
    assert not guard.already_applied(0, 13, "fresh")
    assert guard.already_applied(0, 14, "gone")
    assert guard.windows == {}, "the window closes once the partition passes it"


def test_a_record_that_cannot_be_applied_takes_no_row(tiny_model: Path) -> None:
    # A restore skips such records and goes on; each one must not cost a row for good.
    evaluator = StreamingEvaluator(tiny_model, initial_capacity=1)
    for _ in range(3):
        with pytest.raises(StateFormatError):
            evaluator.restore_case("bad", b"\x01\x00")
    evaluator.on_events([event("c", "A", 0)])
    assert evaluator.open_cases() == ["c"]
    assert evaluator.store.capacity == 1


def test_a_record_counting_an_unknown_activity_is_refused(tiny_model: Path) -> None:
    original = StreamingEvaluator(tiny_model, track_changes=True)
    original.on_events([event("c", "A", 0)])
    ((_, _, state),) = original.take_state_changes().states
    header_and_scalars = 8 + 58
    nnz = int.from_bytes(state[header_and_scalars : header_and_scalars + 2], "little")
    assert nnz == 1
    # The one (activity, count) pair names activity 999, which this model does not have.
    corrupt = bytearray(state)
    corrupt[header_and_scalars + 2 : header_and_scalars + 4] = (999).to_bytes(2, "little")
    restored = StreamingEvaluator(tiny_model)
    with pytest.raises(StateFormatError, match="activity the model lacks"):
        restored.restore_case("c", bytes(corrupt))
    assert restored.open_cases() == []
