"""Back-pressure pauses only what it paused, drains with a deadline and honours a stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka

from casewatch.daemon.backpressure import BackPressure
from casewatch.kafka.producer import OutputProducer

TOPIC = "events"


class FakeConsumer:
    """The consumer calls back-pressure makes, with librdkafka's pause semantics."""

    def __init__(self, assigned: set[int], paused: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.assigned = set(assigned)
        self.paused = set(paused)
        self.pause_calls: list[set[int]] = []

    def assignment(self) -> list[Any]:
        return [confluent_kafka.TopicPartition(TOPIC, p) for p in sorted(self.assigned)]

    def pause(self, partitions: list[Any]) -> None:
        numbers = {tp.partition for tp in partitions}
        self.pause_calls.append(numbers)
        self.paused |= numbers

    def resume(self, partitions: list[Any]) -> None:
        self.paused -= {tp.partition for tp in partitions}


class FakeOutputs:
    """Undelivered outputs that drain by ``per_drain`` records each time they are served."""

    def __init__(self, pending: int, *, max_pending: int = 100, per_drain: int = 1000) -> None:
        self.pending = pending
        self.max_pending = max_pending
        self.per_drain = per_drain
        self.drain_timeouts: list[float] = []

    def poll(self, timeout: float = 0.0) -> None:
        pass

    def over_limit(self) -> bool:
        return self.pending > self.max_pending

    def drain_below(
        self, target: int, *, timeout: float = float("inf"), stopping: Callable[[], bool] = bool
    ) -> bool:
        self.drain_timeouts.append(timeout)
        if not stopping():
            self.pending = max(target, self.pending - self.per_drain)
        return self.pending <= target


def back_pressure(
    outputs: FakeOutputs,
    restoring: set[int],
    stopping: Callable[[], bool] = lambda: False,
    reports: list[int] | None = None,
) -> BackPressure:
    return BackPressure(
        outputs,
        TOPIC,
        held=lambda: restoring,
        drain_seconds=0.5,
        stopping=stopping,
        report=(reports if reports is not None else []).append,
    )


def test_a_restoring_partition_stays_paused_under_back_pressure() -> None:
    consumer = FakeConsumer({0, 1, 2}, paused={2})
    outputs = FakeOutputs(pending=150)
    back_pressure(outputs, restoring={2}).relieve(consumer)
    assert outputs.pending <= 50
    assert consumer.paused == {2}


def test_only_partitions_not_already_paused_are_paused_and_only_they_resume() -> None:
    consumer = FakeConsumer({0, 1, 2, 3}, paused={3})
    outputs = FakeOutputs(pending=150, per_drain=10)
    reports: list[int] = []
    pressure = back_pressure(outputs, restoring={3}, reports=reports)
    pressure.relieve(consumer)
    assert consumer.pause_calls == [{0, 1, 2}]
    assert consumer.paused == {0, 1, 2, 3}
    outputs.per_drain = 1000
    pressure.relieve(consumer)
    assert consumer.paused == {3}
    assert consumer.pause_calls == [{0, 1, 2}]
    assert reports == [1, 0]


def test_the_drain_has_a_deadline_and_the_pause_outlives_it() -> None:
    consumer = FakeConsumer({0, 1})
    outputs = FakeOutputs(pending=150, per_drain=0)
    pressure = back_pressure(outputs, restoring=set())
    pressure.relieve(consumer)
    pressure.relieve(consumer)
    assert outputs.drain_timeouts == [0.5, 0.5]
    # Back in the loop while paused: its consume() returns nothing and keeps the membership.
    assert consumer.paused == {0, 1}
    assert pressure.paused == {0, 1}


def test_a_stop_request_ends_the_drain() -> None:
    consumer = FakeConsumer({0})
    outputs = FakeOutputs(pending=150)
    back_pressure(outputs, restoring=set(), stopping=lambda: True).relieve(consumer)
    assert outputs.pending == 150
    assert consumer.paused == {0}


def test_a_partition_restored_while_paused_waits_for_the_relief() -> None:
    consumer = FakeConsumer({0, 1}, paused={1})
    outputs = FakeOutputs(pending=150, per_drain=0)
    restoring = {1}
    pressure = back_pressure(outputs, restoring=restoring)
    pressure.relieve(consumer)
    restoring.clear()
    pressure.resume_restored(consumer, {1})
    assert consumer.paused == {0, 1}
    outputs.per_drain = 1000
    pressure.relieve(consumer)
    assert consumer.paused == set()


def test_restores_finishing_while_nothing_else_consumes_wait_for_the_relief() -> None:
    consumer = FakeConsumer({0}, paused={0})
    outputs = FakeOutputs(pending=150, per_drain=0)
    restoring = {0}
    pressure = back_pressure(outputs, restoring=restoring)
    pressure.relieve(consumer)
    assert consumer.pause_calls == []
    restoring.clear()
    pressure.resume_restored(consumer, {0})
    assert consumer.paused == {0}
    outputs.per_drain = 1000
    pressure.relieve(consumer)
    assert consumer.paused == set()


def test_a_revoked_partition_is_not_resumed() -> None:
    consumer = FakeConsumer({0, 1})
    outputs = FakeOutputs(pending=150, per_drain=0)
    pressure = back_pressure(outputs, restoring=set())
    pressure.relieve(consumer)
    consumer.assigned.discard(1)
    consumer.paused.discard(1)
    outputs.per_drain = 1000
    resumed: list[set[int]] = []
    original = consumer.resume
    consumer.resume = lambda tps: (resumed.append({tp.partition for tp in tps}), original(tps))  # type: ignore[method-assign,func-returns-value]
    pressure.relieve(consumer)
    assert resumed == [{0}]


def test_the_producer_drain_gives_up_at_its_deadline_and_on_stop() -> None:
    outputs = OutputProducer(
        {"bootstrap.servers": "127.0.0.1:1", "log_level": 0, "message.timeout.ms": 60_000},
        max_pending=10,
        dead_letter_topic="dlq",
    )
    outputs.produce("out", b"k", b"v")
    assert outputs.drain_below(0, timeout=0.2) is False
    assert outputs.drain_below(0, timeout=60, stopping=lambda: True) is False
    assert outputs.pending == 1
