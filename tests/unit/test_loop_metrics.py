"""Running totals the loop hands over become counter increments, each counted once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from casewatch.daemon.decode import INVALID_REASONS
from casewatch.errors import DeliveryFailure
from casewatch.kafka.producer import OutputProducer
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def sample(telemetry: Telemetry, name: str) -> float:
    return telemetry.registry.get_sample_value(name) or 0.0


def test_delivery_errors_are_counted_once_each(telemetry: Telemetry) -> None:
    outputs = SimpleNamespace(failed=0, oversized=0, rerouted=0)
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    metrics = LoopMetrics(telemetry, evaluator, outputs)

    outputs.failed = 2
    metrics.batch(10, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 2
    metrics.batch(10, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 2

    outputs.failed = 3
    metrics.checkpoint(changelog_records=0, pending_outputs=0)
    assert sample(telemetry, "casewatch_delivery_errors_total") == 3


def test_a_record_the_broker_never_takes_is_a_delivery_error(telemetry: Telemetry) -> None:
    # Nothing listens on port 1: librdkafka gives up on the record after message.timeout.ms and
    # reports it through the delivery callback, as it does for any record a broker fails to take.
    outputs = OutputProducer(
        {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 200, "log_level": 0},
        max_pending=10,
        dead_letter_topic="dlq",
    )
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    metrics = LoopMetrics(telemetry, evaluator, outputs)
    outputs.produce("out", b"case-1", b"{}")
    with pytest.raises(DeliveryFailure, match="out"):
        outputs.flush(10.0)
    metrics.batch(1, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 1
    assert sample(telemetry, "casewatch_oversized_records_total") == 0
