"""The changelog buffer hands its records to the producer in the order they were written, a
state column at a time through the batch path, however the checkpoint's slices cut them."""

from __future__ import annotations

import pytest

from casewatch.daemon.changelog_buffer import ChangelogBuffer
from casewatch.state.changelog import SOURCE_OFFSET_HEADER, write_changes
from casewatch.state.changes import StateChanges
from tests.unit.fakes import fake_outputs

TOPIC = "changelog"


class Changes:
    def __init__(self, changes: StateChanges) -> None:
        self.changes = changes

    def take_state_changes(self) -> StateChanges:
        return self.changes


def written(buffer: ChangelogBuffer) -> None:
    """Tombstones of cases a and b, then the states of c, d and e."""
    changes = StateChanges(
        departed=[("a", 0, 7), ("b", 1, 8)],
        states=[("c", 2, b"C"), ("d", 3, b"D"), ("e", 0, b"E")],
    )
    assert write_changes(TOPIC, Changes(changes), buffer) == 5  # type: ignore[arg-type]


def test_records_keep_their_order_partition_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    buffer = ChangelogBuffer()
    written(buffer)
    assert buffer.size == 5
    assert buffer.drain(outputs)
    assert buffer.size == 0
    assert outputs.flush(1.0)
    records = producer.records(TOPIC)
    assert [(m.key(), m.value(), m.partition()) for m in records] == [
        (b"a", None, 0), (b"b", None, 1), (b"c", b"C", 2), (b"d", b"D", 3), (b"e", b"E", 0),
    ]  # fmt: skip
    assert records[0].headers() == [(SOURCE_OFFSET_HEADER, b"7")]
    assert records[2].headers() is None


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
def test_slices_cut_runs_without_reordering(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    buffer = ChangelogBuffer()
    written(buffer)
    written(buffer)  # a second checkpoint's records behind the first's
    slices = 0
    done = False
    while not done:
        done = buffer.drain(outputs, limit)
        slices += 1
        assert len(producer.produced) == min(10, slices * limit)
    assert slices == -(-10 // limit)
    assert [m.key() for m in producer.produced] == [b"a", b"b", b"c", b"d", b"e"] * 2


def test_forgotten_partitions_are_dropped_from_every_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    buffer = ChangelogBuffer()
    written(buffer)
    buffer.forget({0})
    assert buffer.size == 3
    assert buffer.drain(outputs)
    assert [m.key() for m in producer.produced] == [b"b", b"c", b"d"]


def test_nothing_changed_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    buffer = ChangelogBuffer()
    assert write_changes(TOPIC, Changes(StateChanges()), buffer) == 0  # type: ignore[arg-type]
    assert buffer.size == 0 and buffer.drain(outputs)
    assert producer.produced == []
