"""The per-message boundary: messages become events or dead-letter records, nothing escapes."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from casewatch.daemon.decode import INVALID_REASONS, EventDecoder
from casewatch.daemon.intake import Intake
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry


class Message:
    def __init__(self, value: bytes | None, key: bytes | None, partition: int, offset: int,
                 error: Any = None) -> None:  # fmt: skip
        self._value, self._key, self._partition, self._offset = value, key, partition, offset
        self._error = error

    def error(self) -> Any:
        return self._error

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000 + self._offset


class Outputs:
    oversized = rerouted = 0

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, Any]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        self.records.append((topic, key, value, headers))


def event(case_id: str, offset: int, partition: int = 0, key: bytes | None = b"k") -> Message:
    body = json.dumps({"case_id": case_id, "activity": "A"}).encode()
    return Message(body, key, partition, offset)


@pytest.fixture
def telemetry() -> Any:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def intake(telemetry: Telemetry, decoder: Any = None) -> tuple[Intake, Outputs, list[Any]]:
    outputs, consume_errors = Outputs(), []
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    metrics = LoopMetrics(telemetry, evaluator, outputs)
    restorer = SimpleNamespace(guard=SimpleNamespace(windows={}))
    taken = Intake(
        decoder or EventDecoder(),
        outputs=outputs,  # type: ignore[arg-type]
        dead_letter_topic="dlq",
        checkpoint=SimpleNamespace(processed={}),  # type: ignore[arg-type]
        restorer=restorer,  # type: ignore[arg-type]
        metrics=metrics,
        on_consume_error=consume_errors.append,
    )
    return taken, outputs, consume_errors


def sample(telemetry: Telemetry, name: str, **labels: str) -> float:
    return telemetry.registry.get_sample_value(name, labels or None) or 0.0


def test_consumer_error_events_are_not_counted_as_messages(telemetry: Telemetry) -> None:
    taken, _, consume_errors = intake(telemetry)
    partition_eof = SimpleNamespace(code=lambda: -191)
    batch = [event("a", 0), Message(None, None, 0, -1, error=partition_eof), event("b", 1)]
    events, _, consumed = taken.take(batch)
    assert [e.case_id for e in events] == ["a", "b"] and consumed == 2
    assert consume_errors == [partition_eof]


def test_unkeyed_events_are_counted_and_warned_about_once_per_partition(
    telemetry: Telemetry,
) -> None:
    taken, _, _ = intake(telemetry)
    with structlog.testing.capture_logs() as logs:
        taken.take([event("a", 0, 0, key=None), event("b", 1, 0, key=None), event("c", 0, 1)])
        taken.take([event("d", 2, 0, key=None), event("e", 0, 2, key=None)])
    assert sample(telemetry, "casewatch_unkeyed_events_total") == 4
    warned = [line["partition"] for line in logs if line["event"] == "unkeyed_input"]
    assert warned == [0, 2]


def test_any_exception_for_one_message_is_a_dead_letter_record(telemetry: Telemetry) -> None:
    class Exploding(EventDecoder):
        def decode(self, value: Any, key: Any, partition: int, offset: int) -> Any:
            if offset == 1:
                raise RuntimeError("boom\nsecond line")
            return super().decode(value, key, partition, offset)

    taken, outputs, _ = intake(telemetry, Exploding())
    events, _, consumed = taken.take([event("a", 0), event("b", 1), event("c", 2)])
    assert [e.case_id for e in events] == ["a", "c"] and consumed == 3
    ((topic, key, _, headers),) = outputs.records
    reason = dict(headers)["casewatch.error.reason"]
    assert topic == "dlq" and key == b"k" and reason == b"undecodable"
    assert b"\n" not in dict(headers)["casewatch.error.detail"]
    assert sample(telemetry, "casewatch_invalid_events_total", reason="undecodable") == 1
    assert sample(telemetry, "casewatch_dlq_records_total") == 1
