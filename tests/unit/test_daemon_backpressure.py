"""Back-pressure in the running loop: a partition still restoring stays paused through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from casewatch.daemon.decode import INVALID_REASONS
from casewatch.telemetry.metrics import Telemetry
from tests.unit.fakes import FakeMessage
from tests.unit.test_daemon import CHANGELOG, IN, Cluster, body


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def test_a_partition_restoring_under_back_pressure_is_resumed_only_once_both_end(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(
        monkeypatch, tiny_model, telemetry, max_pending_outputs=1, restore_batch_size=1
    )
    # Partition 1 restores one changelog record per iteration; partition 0 has none to restore.
    for n in range(5):
        cluster.changelog.append(FakeMessage(CHANGELOG, 1, n, f"old-{n}".encode(), b"stale"))
    for n in range(6):
        cluster.send(0, f"bad-{n}", b"{not json")  # six dead letters: over the limit of one
    cluster.send(1, "b", body("b", "A"))
    cluster.producer.hold = True  # nothing is delivered until the restore is over
    daemon, consumer = cluster.daemon, cluster.input
    resumed_while_restoring: list[Any] = []
    paused_when_restored: list[bool] = []
    resume, consume = consumer.resume, consumer.consume

    def watched_resume(partitions: list[confluent_kafka.TopicPartition]) -> None:
        if any(tp.partition in daemon.restorer.partitions for tp in partitions):
            resumed_while_restoring.append(partitions)
        resume(partitions)

    def watched_consume(num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if cluster.producer.hold and daemon.back_pressure.active and not daemon.restorer.restoring:
            paused_when_restored.append((IN, 1) in consumer.paused)
            cluster.producer.hold = False
        return consume(num_messages, timeout)

    consumer.resume = watched_resume  # type: ignore[method-assign]
    consumer.consume = watched_consume  # type: ignore[method-assign]
    cluster.run()

    assert resumed_while_restoring == []
    assert paused_when_restored == [True]
    assert consumer.paused == set()
    assert len(cluster.producer.records("dlq")) == 6
