"""Rebalance callbacks: assign pauses and starts the restore, revoke checkpoints (bounded) and
drops the partitions' cases, lost drops without committing; failures never escape a callback."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest
import structlog

from casewatch.daemon.checkpoint import Checkpoint
from casewatch.daemon.rebalance import Rebalance
from casewatch.errors import DeliveryFailure, KafkaFailure
from casewatch.state.restore import Restorer
from tests.unit.fakes import FakeConsumer, FakeMessage, FakeProducer, fake_outputs, kafka_error

IN, OUT = "in", "out"


class Cases:
    """The evaluator as the callbacks and the restore see it."""

    def __init__(self, journal: list[Any]) -> None:
        self.journal = journal
        self.dropped: list[set[int]] = []

    def drop_partitions(self, partitions: set[int]) -> int:
        self.dropped.append(set(partitions))
        self.journal.append(("drop", "", sorted(partitions)))
        return 0

    def restore_case(self, case_id: str, state: bytes) -> None: ...

    def forget_case(self, case_id: str) -> None: ...

    def last_offset(self, case_id: str) -> int | None:
        return None


class Setup:
    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        *,
        out_of_range: str = "earliest",
        cooperative: bool = False,
        flush_timeout: float = 1.0,
    ) -> None:
        self.journal: list[Any] = []
        self.producer = FakeProducer(journal=self.journal)
        self.consumer = FakeConsumer(journal=self.journal)
        self.outputs, _ = fake_outputs(monkeypatch, self.producer)
        self.checkpoint = Checkpoint(IN, interval=5.0, write_changelog=lambda: 0)
        self.cases = Cases(self.journal)
        self.restorer = Restorer("changelog", {}, self.cases, batch_size=100)
        self.counted: list[tuple[str, set[int]]] = []
        self.rebalance = Rebalance(
            checkpoint=self.checkpoint,
            outputs=self.outputs,
            evaluator=self.cases,
            restorer=self.restorer,
            out_of_range=out_of_range,
            cooperative=cooperative,
            flush_timeout=flush_timeout,
            counted=lambda kind, partitions: self.counted.append((kind, set(partitions))),
        )

    def assign(self, *partitions: int) -> list[confluent_kafka.TopicPartition]:
        tps = [confluent_kafka.TopicPartition(IN, p) for p in partitions]
        self.rebalance.on_assign(self.consumer, tps)
        return tps

    def revoke(self, *partitions: int) -> None:
        tps = [confluent_kafka.TopicPartition(IN, p) for p in partitions]
        self.rebalance.on_revoke(self.consumer, tps)

    def lose(self, *partitions: int) -> None:
        tps = [confluent_kafka.TopicPartition(IN, p) for p in partitions]
        self.rebalance.on_lost(self.consumer, tps)

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.journal]


@pytest.mark.parametrize("cooperative", [False, True])
def test_assign_pauses_new_partitions_and_starts_their_restore(
    monkeypatch: pytest.MonkeyPatch, cooperative: bool
) -> None:
    s = Setup(monkeypatch, cooperative=cooperative)
    s.assign(0, 2)
    assert set(s.consumer.assigned) == {(IN, 0), (IN, 2)}
    assert s.consumer.paused == {(IN, 0), (IN, 2)}
    assert s.kinds() == ["assign", "pause"]  # paused before consume() can return their events
    assert s.restorer.restoring
    assert s.rebalance.assigned == {0, 2}
    assert s.counted == [("assign", {0, 2})]
    s.consumer.append(FakeMessage(IN, 0, 0, b"k", b"{}"))
    assert s.consumer.consume(10, 0) == []


def test_cooperative_assign_adds_to_what_is_assigned(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, cooperative=True)
    s.assign(0)
    s.consumer.resume([confluent_kafka.TopicPartition(IN, 0)])  # restored meanwhile
    s.assign(1)
    assert set(s.consumer.assigned) == {(IN, 0), (IN, 1)}
    assert s.consumer.paused == {(IN, 1)}
    assert s.rebalance.assigned == {0, 1}


def test_revoke_checkpoints_then_drops_the_partitions_cases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch)
    s.assign(0, 1)
    s.checkpoint.processed.update({0: 9, 1: 4})
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.revoke(1)
    assert s.consumer.commits == [{(IN, 0): 10, (IN, 1): 5}]
    assert s.kinds()[-3:] == ["delivered", "commit", "drop"]
    assert s.cases.dropped == [{1}]
    assert s.rebalance.assigned == {0}
    assert s.counted[-1] == ("revoke", {1})
    s.rebalance.raise_failure()


def test_revoked_partitions_are_not_committed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.assign(0, 1)
    s.checkpoint.processed.update({0: 9, 1: 4})
    s.revoke(1)
    s.checkpoint.processed[0] = 12
    s.revoke(0)
    assert s.consumer.commits == [{(IN, 0): 10, (IN, 1): 5}, {(IN, 0): 13}]


def test_revoke_waits_only_so_long_for_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, flush_timeout=0.02)
    s.assign(0)
    s.checkpoint.processed[0] = 9
    s.producer.hold = True
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.revoke(0)
    assert s.consumer.commits == []  # the outputs may still be lost: the new owner re-reads
    assert s.cases.dropped == [{0}]
    assert s.rebalance.assigned == set()
    s.rebalance.raise_failure()


def test_lost_drops_without_committing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.assign(0, 1)
    s.checkpoint.processed.update({0: 9, 1: 4})
    s.lose(0, 1)
    assert s.consumer.commits == []
    assert s.cases.dropped == [{0, 1}]
    assert not s.restorer.restoring
    assert s.counted[-1] == ("lost", {0, 1})
    s.checkpoint.processed[2] = 0
    assert s.checkpoint.committable() == [(2, 1)]  # the lost partitions' offsets are forgotten


def test_revoke_mid_restore_cancels_it(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.assign(0)
    assert s.restorer.restoring
    s.revoke(0)
    assert not s.restorer.restoring


def test_a_commit_rejected_during_a_rebalance_is_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch)
    s.assign(0)
    s.checkpoint.processed[0] = 9
    s.consumer.commit_error = kafka_error(
        confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS, "Broker: Group rebalance in progress"
    )
    with structlog.testing.capture_logs() as logs:
        s.revoke(0)
    s.rebalance.raise_failure()  # nothing to raise
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1 and "rebalance in progress" in warnings[0]["error"]
    assert s.cases.dropped == [{0}]


def test_a_fatal_commit_error_is_raised_after_the_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch)
    s.assign(0)
    s.checkpoint.processed[0] = 9
    s.consumer.commit_error = kafka_error(
        confluent_kafka.KafkaError._FATAL, "Local: Fatal error", fatal=True
    )
    s.revoke(0)  # does not raise into librdkafka
    assert s.cases.dropped == [{0}]
    with pytest.raises(KafkaFailure) as raised:
        s.rebalance.raise_failure()
    assert isinstance(raised.value.__cause__, confluent_kafka.KafkaException)
    s.rebalance.raise_failure()  # raised once


def test_a_delivery_failure_during_revoke_is_raised_after_the_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Setup(monkeypatch)
    s.assign(0)
    s.checkpoint.processed[0] = 9
    s.producer.fail[OUT] = kafka_error(-192, "Local: Message timed out")
    s.outputs.produce(OUT, b"case", b"evaluation")
    s.revoke(0)
    assert s.consumer.commits == []
    with pytest.raises(DeliveryFailure):
        s.rebalance.raise_failure()


def test_no_commit_on_revoke_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch)
    s.assign(0)
    s.checkpoint.processed[0] = 9
    s.rebalance.commit_on_revoke = False
    s.revoke(0)
    assert s.consumer.commits == []
    assert s.cases.dropped == [{0}]


@pytest.mark.parametrize(("policy", "start"), [("earliest", 100), ("latest", 180)])
def test_a_committed_offset_retention_deleted_follows_the_policy(
    monkeypatch: pytest.MonkeyPatch, policy: str, start: int
) -> None:
    s = Setup(monkeypatch, out_of_range=policy)
    s.consumer.stored[IN, 0] = 40
    s.consumer.low[IN, 0] = 100
    s.consumer.logs[IN, 0] = [FakeMessage(IN, 0, offset) for offset in range(180)]
    s.consumer.stored[IN, 1] = 150  # inside the log: kept
    s.consumer.low[IN, 1] = 100
    s.consumer.logs[IN, 1] = [FakeMessage(IN, 1, offset) for offset in range(180)]
    s.assign(0, 1)
    assert s.consumer.positions == {(IN, 0): start, (IN, 1): 150}
    assert s.rebalance.out_of_range_count == 1
    s.rebalance.raise_failure()


def test_out_of_range_fail_is_raised_after_the_callback(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Setup(monkeypatch, out_of_range="fail")
    s.consumer.stored[IN, 0] = 40
    s.consumer.low[IN, 0] = 100
    s.assign(0)
    assert s.consumer.paused == {(IN, 0)}  # assigned paused all the same
    with pytest.raises(KafkaFailure, match="committed offset 40 is outside the log"):
        s.rebalance.raise_failure()
