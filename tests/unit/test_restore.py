"""Restore from the changelog and the replay guard, over an in-memory changelog partition.

The changelog is written by the same code the daemon uses, from a real evaluator's state
changes, and read back into a fresh evaluator by the Restorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from casewatch import StreamingEvaluation, StreamingEvaluator, StreamingEvent
from casewatch.errors import KafkaFailure
from casewatch.state.changelog import write_changes
from casewatch.state.restore import Restorer
from tests.unit.conftest import USERS
from tests.unit.fakes import FakeConsumer, FakeMessage, fake_outputs, install, kafka_error

CHANGELOG = "changelog"


def event(
    case_id: str, name: str, partition: int, offset: int, *, close: bool = False
) -> StreamingEvent:
    return StreamingEvent(
        case_id,
        name,
        timestamp=1_700_000_000.0 + offset,
        attributes={"user": USERS[name]},
        close=close,
        partition=partition,
        offset=offset,
    )


def evaluator(model: Path) -> StreamingEvaluator:
    return StreamingEvaluator(model, track_changes=True)


class Changelog:
    """A changelog topic in memory: what ``write_changes`` delivered, readable by a consumer."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.outputs, self.producer = fake_outputs(monkeypatch)
        self.consumer = FakeConsumer()
        install(monkeypatch, consumer=self.consumer)

    def checkpoint(self, source: StreamingEvaluator) -> int:
        written = write_changes(CHANGELOG, source, self.outputs)
        assert self.outputs.flush(1.0)
        self.consumer.logs.clear()
        for message in self.producer.records(CHANGELOG):
            self.consumer.append(message)
        return written

    def restore(self, target: Any, partitions: list[int], *, batch_size: int = 100) -> Restorer:
        restorer = Restorer(CHANGELOG, {"group.id": "restore"}, target, batch_size=batch_size)
        restorer.begin(partitions)
        for _ in range(100):
            restorer.step()
            if not restorer.restoring:
                return restorer
        raise AssertionError("the restore did not finish")


def final(evaluation: StreamingEvaluation) -> tuple[Any, ...]:
    """What an evaluation says about its case, without when it was made."""
    return (
        evaluation.case_id,
        evaluation.n_events,
        round(evaluation.trace_score, 9),
        evaluation.anomalous,
        evaluation.trigger,
    )


def test_restored_cases_match_the_changelog(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events(
        [
            event("a", "A", 0, 0),
            event("b", "A", 1, 0),
            event("a", "B", 0, 1),
            event("b", "B", 1, 1),
            event("a", "C", 0, 2),
            event("c", "A", 0, 3),
        ]
    )
    changelog = Changelog(monkeypatch)
    assert changelog.checkpoint(source) == 3
    restored = evaluator(tiny_model)
    restorer = changelog.restore(restored, [0, 1])
    assert sorted(restored.open_cases()) == ["a", "b", "c"]
    assert [restored.last_offset(case) for case in "abc"] == [2, 1, 3]
    assert restorer.records == 3
    # Carrying on from the restored state gives what carrying on without a restart gives.
    rest = [
        event("a", "E", 0, 4, close=True),
        event("b", "D", 1, 2),
        event("b", "E", 1, 3, close=True),
    ]
    assert [final(e) for e in restored.on_events(rest)] == [
        final(e) for e in source.on_events(rest)
    ]


def test_only_the_assigned_partitions_are_restored(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event("a", "A", 0, 0), event("b", "A", 1, 0)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    restored = evaluator(tiny_model)
    changelog.restore(restored, [1])
    assert restored.open_cases() == ["b"]


def test_tombstones_remove_cases(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    source = evaluator(tiny_model)
    changelog = Changelog(monkeypatch)
    source.on_events([event("a", "A", 0, 0), event("b", "A", 0, 1)])
    changelog.checkpoint(source)
    source.on_events([event("a", "B", 0, 2), event("a", "E", 0, 3, close=True)])
    changelog.checkpoint(source)
    # One log holds both checkpoints, as an uncompacted changelog does.
    log = changelog.producer.records(CHANGELOG)
    changelog.consumer.logs[CHANGELOG, 0] = log
    assert [m.value() is None for m in log] == [False, False, True]
    restored = evaluator(tiny_model)
    restorer = changelog.restore(restored, [0])
    assert restored.open_cases() == ["b"]
    # Re-delivered from the last commit, the closed case's events up to its tombstone are
    # not applied again; the open one's are, from where its state ends.
    replay = [(0, "a"), (1, "b"), (2, "a"), (3, "a"), (4, "b")]
    assert skipped(restorer.guard, 0, replay) == [True, True, True, True, False]


def test_a_restore_reads_in_chunks_and_reports_each_partition(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event(f"c{i}", "A", 0, i) for i in range(7)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    restored = evaluator(tiny_model)
    restorer = Restorer(CHANGELOG, {}, restored, batch_size=2)
    restorer.begin([0, 1])
    finished: dict[int, float] = {}
    steps = 0
    while restorer.restoring:
        steps += 1
        finished.update(restorer.step())
        assert steps < 20
    assert steps == 4  # 7 records, 2 per step; partition 1 has none and finishes at once
    assert set(finished) == {0, 1} and all(seconds >= 0 for seconds in finished.values())
    assert restored.open_case_count == 7
    assert changelog.consumer.assigned == []  # the changelog partitions are let go


def test_a_record_of_another_shape_is_skipped(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event("a", "A", 0, 0)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    changelog.consumer.append(FakeMessage(CHANGELOG, 0, 1, b"odd", b"\x00not a state record"))
    restored = evaluator(tiny_model)
    with structlog.testing.capture_logs() as logs:
        changelog.restore(restored, [0])
    assert restored.open_cases() == ["a"]
    assert [entry["case_id"] for entry in logs if entry["event"] == "changelog_record_skipped"] == [
        "odd"
    ]


def test_a_fatal_read_error_stops_the_restore(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    changelog = Changelog(monkeypatch)
    changelog.consumer.append(
        FakeMessage(CHANGELOG, 0, 0, b"a", b"x", error=kafka_error(-150, "fatal", fatal=True))
    )
    restorer = Restorer(CHANGELOG, {}, evaluator(tiny_model), batch_size=10)
    restorer.begin([0])
    with pytest.raises(KafkaFailure, match="changelog read failed"):
        restorer.step()


def test_a_cancelled_restore_lets_its_changelog_partition_go(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event(f"c{i}", "A", 0, i) for i in range(5)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    restorer = Restorer(CHANGELOG, {}, evaluator(tiny_model), batch_size=2)
    restorer.begin([0])
    restorer.step()
    assert changelog.consumer.assigned == [(CHANGELOG, 0)]
    restorer.cancel({0})
    assert not restorer.restoring
    assert changelog.consumer.assigned == []
    assert restorer.step() == {}


# -- the replay guard ---------------------------------------------------------------------------


def skipped(guard: Any, partition: int, events: list[tuple[int, str]]) -> list[bool]:
    """For events re-delivered in offset order, whether each is skipped, as the intake asks."""
    return [
        partition in guard.windows and guard.already_applied(partition, offset, case_id)
        for offset, case_id in events
    ]


def restored_guard(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> tuple[Any, StreamingEvaluator]:
    """State reflecting input up to offset 5 on partition 0: case a through 2, case b through 5."""
    source = evaluator(tiny_model)
    source.on_events(
        [event("a", "A", 0, 1), event("a", "B", 0, 2), event("b", "A", 0, 4), event("b", "B", 0, 5)]
    )
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    restored = evaluator(tiny_model)
    return changelog.restore(restored, [0]).guard, restored


def test_events_the_restored_state_reflects_are_skipped_per_case(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    guard, _ = restored_guard(monkeypatch, tiny_model)
    # The group re-delivers from the last commit (offset 1): each case skips what it holds,
    # and a case with no restored state takes every event.
    replay = [(1, "a"), (2, "a"), (3, "new"), (4, "b"), (5, "b")]
    assert skipped(guard, 0, replay) == [True, True, False, True, True]


def test_events_after_the_restored_state_are_applied(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    guard, _ = restored_guard(monkeypatch, tiny_model)
    # Case a holds offsets up to 2 only: its event at 3 is new, though b's at 4 is not.
    replay = [(2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "b"), (7, "a")]
    assert skipped(guard, 0, replay) == [True, False, True, True, False, False]
    # Past everything the state reflects, the partition is no longer guarded.
    assert 0 not in guard.windows


def test_a_guarded_partition_skips_nothing_of_another(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    guard, _ = restored_guard(monkeypatch, tiny_model)
    assert skipped(guard, 1, [(1, "a"), (2, "a")]) == [False, False]


def test_a_revoked_partition_is_no_longer_guarded(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event("a", "A", 0, 1)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    restorer = changelog.restore(evaluator(tiny_model), [0])
    assert 0 in restorer.guard.windows
    restorer.cancel({0})
    assert restorer.guard.windows == {}


def test_topic_partitions_name_the_changelog(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    source = evaluator(tiny_model)
    source.on_events([event("a", "A", 2, 0)])
    changelog = Changelog(monkeypatch)
    changelog.checkpoint(source)
    assert [(m.topic(), m.partition()) for m in changelog.producer.records(CHANGELOG)] == [
        (CHANGELOG, 2)
    ]
    changelog.restore(evaluator(tiny_model), [2])
    assert any(
        kind == "assign" and names == [(CHANGELOG, 2)]
        for kind, _, names in changelog.consumer.journal
    )
