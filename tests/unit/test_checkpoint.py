"""The checkpoint: outputs delivered, then the changelog written and delivered, then offsets
committed; offsets only move forward and nothing is committed past an undelivered output."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import confluent_kafka
import pytest

from casewatch.daemon.changelog_buffer import ChangelogBuffer
from casewatch.daemon.checkpoint import CHANGELOG_SLICE, Checkpoint
from casewatch.errors import DeliveryFailure
from tests.unit.fakes import FakeConsumer, FakeProducer, fake_outputs, kafka_error

IN, OUT, CHANGELOG = "in", "out", "changelog"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """A checkpoint over fakes whose changelog writer queues one state record per call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, interval: float = 5.0) -> None:
        self.journal: list[tuple[str, str, object]] = []
        self.producer = FakeProducer(journal=self.journal)
        self.consumer = FakeConsumer(journal=self.journal)
        self.outputs, _ = fake_outputs(monkeypatch, self.producer)
        self.clock = Clock()
        self.changelog_writes = 0
        self.checkpoint = Checkpoint(
            IN, interval=interval, write_changelog=self._write_changelog, clock=self.clock
        )

    def _write_changelog(self) -> int:
        self.changelog_writes += 1
        self.outputs.produce(CHANGELOG, b"case", b"state", None, 0)
        return 1

    def handled(self, partition: int, offset: int) -> None:
        """The loop's record of the highest input offset it has handled."""
        self.checkpoint.processed[partition] = offset

    def commit(self, timeout: float = 1.0) -> bool:
        return self.checkpoint.commit(self.consumer, self.outputs, flush_timeout=timeout)

    def advance(self) -> bool:
        return self.checkpoint.advance(self.consumer, self.outputs)

    def steps(self) -> list[tuple[str, str]]:
        return [(kind, topic) for kind, topic, _ in self.journal]


def test_outputs_then_changelog_then_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.handled(0, 41)
    s.handled(1, 7)
    assert s.commit()
    assert s.steps() == [
        ("produce", OUT),
        ("delivered", OUT),
        ("produce", CHANGELOG),
        ("delivered", CHANGELOG),
        ("commit", ""),
    ]
    assert s.consumer.commits == [{(IN, 0): 42, (IN, 1): 8}]


def test_nothing_committed_while_an_output_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.producer.hold = True
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.handled(0, 3)
    assert not s.commit(timeout=0.02)
    assert s.consumer.commits == []
    assert s.changelog_writes == 0  # no state may reflect input whose outputs could be lost
    s.producer.hold = False
    assert s.commit()
    assert s.consumer.commits == [{(IN, 0): 4}]


def test_nothing_committed_while_the_changelog_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch)
    s.handled(0, 3)
    s.producer.hold = True
    assert not s.commit(timeout=0.02)
    assert s.changelog_writes == 1
    assert s.consumer.commits == []


def test_a_failed_delivery_commits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.producer.fail[OUT] = kafka_error(-192, "Local: Message timed out")
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.handled(0, 9)
    with pytest.raises(DeliveryFailure, match="timed out"):
        s.commit()
    assert s.consumer.commits == []
    assert s.changelog_writes == 0
    # The failure stays: a later checkpoint must not commit past the lost output either.
    with pytest.raises(DeliveryFailure):
        s.commit()
    assert s.consumer.commits == []


def test_offsets_only_move_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.handled(0, 10)
    assert s.commit()
    s.handled(0, 5)  # input read again after a rewind
    s.handled(1, 0)
    assert s.commit()
    s.handled(0, 10)  # where the commit already is
    assert s.commit()
    assert s.consumer.commits == [{(IN, 0): 11}, {(IN, 1): 1}]
    assert s.checkpoint.commits == 2


def test_a_checkpoint_with_nothing_new_commits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    assert s.commit()
    assert s.consumer.commits == []
    assert s.checkpoint.commits == 0


def test_forgotten_partitions_are_not_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.handled(0, 4)
    s.handled(1, 6)
    s.checkpoint.forget({1})
    assert s.commit()
    assert s.consumer.commits == [{(IN, 0): 5}]


def test_the_interval_decides_when_a_checkpoint_is_due(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.handled(0, 1)
    assert not s.checkpoint.expired()
    assert not s.advance()
    assert s.consumer.commits == []
    s.clock.now += 5.0
    assert s.checkpoint.expired()
    s.commit()
    assert not s.checkpoint.expired()  # a commit starts the next interval
    s.clock.now += 4.9
    assert not s.checkpoint.expired()


def test_the_next_step_is_due_now_while_a_checkpoint_is_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.handled(0, 1)
    s.clock.now += 2.0
    assert s.checkpoint.next_step_in() == pytest.approx(3.0)
    s.clock.now += 3.5
    assert s.checkpoint.next_step_in() == 0.0  # overdue
    s.producer.hold = True
    s.outputs.produce(OUT, b"case", b"evaluation")
    assert not s.advance()
    assert s.checkpoint.under_way
    assert s.checkpoint.next_step_in() == 0.0  # moves as soon as the outputs are delivered
    s.producer.hold = False
    run_until(s)
    assert not s.checkpoint.under_way
    assert s.checkpoint.next_step_in() == pytest.approx(5.0)


def test_a_checkpoint_with_an_empty_changelog_commits_in_the_step_it_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.checkpoint._write_changelog = lambda: 0  # no case changed
    s.handled(0, 9)
    s.clock.now += 5.0
    assert run_until(s) == 1
    assert s.consumer.commits == [{(IN, 0): 10}]


def run_until(s: Setup, limit: int = 5) -> int:
    """Serve delivery reports and advance, as each loop iteration does, until one completes."""
    for calls in range(1, limit + 1):
        s.outputs.poll(0)
        if s.advance():
            return calls
    raise AssertionError(f"no checkpoint completed in {limit} calls")


def test_background_checkpoint_takes_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.handled(0, 41)
    s.clock.now += 5.0
    s.producer.hold = True
    assert not s.advance()  # outputs in flight
    assert not s.advance()
    assert s.changelog_writes == 0
    s.producer.release(1)
    assert not s.advance()  # outputs delivered: the changelog is written, not yet delivered
    assert s.changelog_writes == 1
    assert s.consumer.commits == []
    s.producer.hold = False
    s.outputs.poll(0)
    assert s.advance()
    assert s.consumer.commits == [{(IN, 0): 42}]
    assert [step for step in s.steps() if step[0] != "produce"] == [
        ("delivered", OUT),
        ("delivered", CHANGELOG),
        ("commit", ""),
    ]


def test_background_checkpoint_commits_what_was_handled_when_it_began(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.handled(0, 10)
    s.clock.now += 5.0
    s.producer.hold = True
    s.outputs.produce(OUT, b"a", b"evaluation")
    assert not s.advance()
    # The loop goes on: later input and its outputs are not covered by this checkpoint.
    s.handled(0, 20)
    s.outputs.produce(OUT, b"b", b"evaluation")
    s.producer.hold = False
    s.outputs.poll(0)
    run_until(s)
    assert s.consumer.commits == [{(IN, 0): 11}]


def test_background_checkpoint_does_not_wait_for_newer_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.handled(0, 10)
    s.outputs.produce(OUT, b"a", b"evaluation")
    s.clock.now += 5.0
    s.producer.hold = True
    assert not s.advance()
    s.outputs.produce(OUT, b"b", b"evaluation")  # produced after the checkpoint began
    s.producer.release(1)
    assert not s.advance()
    assert s.changelog_writes == 1  # went on without waiting for "b"


def test_background_checkpoint_raises_a_failed_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.producer.fail[OUT] = kafka_error(-192, "Local: Message timed out")
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.handled(0, 3)
    s.clock.now += 5.0
    s.outputs.poll(0)
    with pytest.raises(DeliveryFailure):
        s.advance()
    assert s.consumer.commits == []
    assert s.changelog_writes == 0


def test_a_blocking_commit_covers_a_background_one_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch, interval=5.0)
    s.handled(0, 3)
    s.clock.now += 5.0
    s.producer.hold = True
    s.outputs.produce(OUT, b"case", b"evaluation")
    assert not s.advance()
    s.producer.hold = False
    assert s.commit()  # as on revoke or shutdown
    assert not s.advance()  # nothing left under way, and the interval starts again
    assert s.consumer.commits == [{(IN, 0): 4}]


def test_transactional_checkpoint_sends_offsets_in_the_transaction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer = FakeProducer()
    outputs, _ = fake_outputs(monkeypatch, producer, config={"transactional.id": "t"})
    consumer = FakeConsumer()
    checkpoint = Checkpoint(IN, interval=5.0, write_changelog=lambda: 0)
    outputs.start_transactions(1.0)
    checkpoint.processed[0] = 7
    assert checkpoint.commit(consumer, outputs, flush_timeout=1.0)
    assert producer.transactions == ["init", "begin", "send_offsets", "commit", "begin"]
    assert consumer.commits == []  # offsets go with the transaction, not through the consumer
    assert checkpoint.commit(consumer, outputs, flush_timeout=1.0)
    assert producer.transactions.count("send_offsets") == 2


def test_a_partition_the_broker_refuses_to_commit_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refusing(FakeConsumer):
        def commit(
            self, message: Any = None, offsets: Any = None, asynchronous: bool = True
        ) -> Any:
            error = kafka_error(
                confluent_kafka.KafkaError.UNKNOWN_MEMBER_ID, "Broker: Unknown member"
            )
            return [SimpleNamespace(partition=tp.partition, error=error) for tp in offsets or ()]

    s = Setup(monkeypatch)
    s.consumer = Refusing()
    s.handled(0, 3)
    with pytest.raises(confluent_kafka.KafkaException, match="Unknown member"):
        s.commit()
    assert s.checkpoint.committable() == [(0, 4)]  # not taken as committed: tried again next time


class BufferedSetup(Setup):
    """The changelog writer puts ``records`` records into a buffer, as the daemon's does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, records: int) -> None:
        super().__init__(monkeypatch)
        self.records = records
        self.buffer = ChangelogBuffer()
        self.checkpoint = Checkpoint(
            IN,
            interval=5.0,
            write_changelog=self._write_to_buffer,
            buffer=self.buffer,
            clock=self.clock,
        )

    def _write_to_buffer(self) -> int:
        for i in range(self.records):
            self.buffer.produce(CHANGELOG, f"case-{i}".encode(), b"state", None, i % 2)
        return self.records

    def changelog_produced(self) -> int:
        return sum(1 for kind, topic in self.steps() if (kind, topic) == ("produce", CHANGELOG))


def test_background_checkpoint_hands_the_changelog_over_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = BufferedSetup(monkeypatch, records=2 * CHANGELOG_SLICE + 1)
    s.handled(0, 9)
    s.clock.now += 5.0
    assert not s.advance()  # outputs delivered: the changelog is taken, a first slice produced
    assert s.changelog_produced() == CHANGELOG_SLICE
    assert not s.advance()
    assert not s.advance()  # the last record; then the changelog's delivery is awaited
    assert s.changelog_produced() == 2 * CHANGELOG_SLICE + 1
    assert s.consumer.commits == []
    s.outputs.poll(0)
    assert s.advance()
    assert s.consumer.commits == [{(IN, 0): 10}]
    assert s.checkpoint.changelog_records == 2 * CHANGELOG_SLICE + 1


def test_a_blocking_commit_produces_what_a_background_one_left_in_the_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = BufferedSetup(monkeypatch, records=CHANGELOG_SLICE + 10)
    s.handled(0, 9)
    s.clock.now += 5.0
    assert not s.advance()
    s.records = 1
    assert s.commit()
    assert s.changelog_produced() == CHANGELOG_SLICE + 11
    assert s.buffer.size == 0
    assert s.consumer.commits == [{(IN, 0): 10}]


def test_records_of_forgotten_partitions_leave_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    s = BufferedSetup(monkeypatch, records=CHANGELOG_SLICE + 10)
    s.handled(0, 9)
    s.clock.now += 5.0
    assert not s.advance()
    s.checkpoint.forget([1])
    assert s.buffer.size == 5  # of the 10 left after the first slice, those of partition 0
