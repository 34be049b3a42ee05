"""Chaos: hostile input, oversized outputs and a failing model against the real broker.

Each test runs ``casewatch run`` against the session's Kafka-protocol broker, feeds good cases
around the bad input, and checks the promise in its docstring: every good case is evaluated, the
bad input is on the dead-letter topic with its reason, and the group's committed offset reaches
the end of the input (nothing a single message carries can stop the loop or hold its commit).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from casewatch.events import StreamingEvent
from casewatch.kafka.feed import encode_event
from tests.failing_model import failing_copy
from tests.integration.daemon_harness import (
    QUIET,
    DaemonProcess,
    Record,
    case_events,
    committed_and_end,
    outputs_after_catch_up,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(150)]

GOOD_CASES = 40

POISON: dict[str, tuple[bytes, set[str]]] = {
    "invalid_utf8": (b'{"case_id":"bad\xff\xfe","activity":"Create PO"}', {"not_json", "not_utf8"}),
    "nested_1000": (
        b'{"case_id":"deep","activity":"Create PO","attributes":'
        + b'{"a":' * 1000
        + b"1"
        + b"}" * 1000
        + b"}",
        {"too_deep"},
    ),
    # Decodes, but the model's "user" attribute would be turned into a string mid-batch.
    "model_attribute_995_deep": (
        b'{"case_id":"deep-user","activity":"Create PO","attributes":{"user":'
        + b"[" * 995
        + b"]" * 995
        + b"}}",
        {"too_deep"},
    ),
    "timestamp_310_digits": (
        b'{"case_id":"big","activity":"Create PO","timestamp":' + b"9" * 310 + b"}",
        {"bad_timestamp", "not_json"},
    ),
    "timestamp_310_digits_flat": (
        b'{"case_id":"big","activity":"Create PO","x":1,"timestamp":-' + b"9" * 310 + b"}",
        {"bad_timestamp", "not_json"},
    ),
    "lone_surrogate": (b'{"case_id":"\\ud800","activity":"Create PO"}', {"not_json"}),
    "integer_of_5000_digits": (
        b'{"case_id":"c","activity":"Create PO","attributes":{"n":' + b"7" * 5000 + b"}}",
        {"not_json"},
    ),
    "binary": (bytes(range(256)), {"not_json"}),
    "json_array_1000_deep": (b"[" * 1000 + b"]" * 1000, {"too_deep"}),
}


def raw_producer(bootstrap: str) -> Any:
    return confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": 4_000_000, **QUIET}
    )


def produce_around(
    bootstrap: str, topic: str, bad: list[tuple[bytes | None, bytes]], good: list[StreamingEvent]
) -> None:
    """Half the good events, the bad messages, then the rest of the good events."""
    half = len(good) // 2
    produce_events(bootstrap, topic, good[:half])
    producer = raw_producer(bootstrap)
    for key, value in bad:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    produce_events(bootstrap, topic, good[half:])


def assert_all_committed(bootstrap: str, topics: dict[str, str]) -> None:
    committed, ends = committed_and_end(bootstrap, topics["group"], topics["input"])
    assert [max(c, 0) for c in committed] == ends


def closed_case_ids(bootstrap: str, topics: dict[str, str], daemon: DaemonProcess) -> set[str]:
    return {e.case_id for e in outputs_after_catch_up(bootstrap, topics, daemon) if e.closed}


def dead_letters(bootstrap: str, topics: dict[str, str], count: int) -> list[Record]:
    return read_records(bootstrap, topics["dlq"], until=count, timeout=60)


def headers_of(record: Record) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in record.headers.items()}


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_poison_messages_go_to_the_dead_letter_topic_and_every_good_case_is_evaluated(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Invalid UTF-8, 1000-deep nesting, a 310-digit timestamp and other poison each become one
    dead-letter record with its reason; the daemon keeps running, every good case around them
    is evaluated, and the committed offsets reach the end of the input."""
    good = case_events(GOOD_CASES)
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        bad = [(f"poison-{name}".encode(), value) for name, (value, _) in POISON.items()]
        produce_around(kafka_bootstrap, topics["input"], bad, good)
        closed = closed_case_ids(kafka_bootstrap, topics, daemon)
        dead = dead_letters(kafka_bootstrap, topics, len(POISON))
        assert_all_committed(kafka_bootstrap, topics)
        assert daemon.process is not None and daemon.process.poll() is None
    finally:
        daemon.kill()

    assert closed == {e.case_id for e in good}
    assert len(dead) == len(POISON)
    by_key = {r.key: r for r in dead}
    for name, (value, reasons) in POISON.items():
        record = by_key[f"poison-{name}".encode()]
        assert record.value == value, name
        assert headers_of(record)["casewatch.error.reason"] in reasons, name


def test_an_evaluation_too_large_for_the_broker_becomes_a_truncated_dead_letter_record(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """A valid event with a 520 KB case id yields an evaluation larger than message.max.bytes:
    it is replaced by a dead-letter record with key and value truncated and the original sizes
    in headers, counted; the loop goes on and commits past it."""
    good = case_events(GOOD_CASES)
    huge_case = "c" * 520_000
    event = StreamingEvent(huge_case, "Create PR", close=True)
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        bad = [(huge_case.encode(), encode_event(event))]
        produce_around(kafka_bootstrap, topics["input"], bad, good)
        closed = closed_case_ids(kafka_bootstrap, topics, daemon)
        (record,) = dead_letters(kafka_bootstrap, topics, 1)
        assert_all_committed(kafka_bootstrap, topics)
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()

    assert closed == {e.case_id for e in good}
    headers = headers_of(record)
    assert headers["casewatch.error.reason"] == "output_too_large"
    assert headers["casewatch.output.topic"] == topics["output"]
    assert int(headers["casewatch.original.key_bytes"]) == 520_000
    assert int(headers["casewatch.original.value_bytes"]) > 520_000
    assert record.key is not None and huge_case.encode().startswith(record.key)
    assert len(record.key) + len(record.value or b"") < 1_000_000
    assert metric(metrics, "casewatch_oversized_records_total") == 1


def test_a_dead_letter_record_too_large_for_the_broker_is_truncated_key_and_value(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """A 1 MB non-JSON value with a 200 KB key makes a dead-letter record over the limit: it is
    sent with key and value truncated, its reason kept and the original sizes in headers."""
    good = case_events(GOOD_CASES)
    key, value = b"k" * 200_000, b"x" * 1_000_000
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        produce_around(kafka_bootstrap, topics["input"], [(key, value)], good)
        closed = closed_case_ids(kafka_bootstrap, topics, daemon)
        (record,) = dead_letters(kafka_bootstrap, topics, 1)
        assert_all_committed(kafka_bootstrap, topics)
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()

    assert closed == {e.case_id for e in good}
    headers = headers_of(record)
    assert headers["casewatch.error.reason"] == "not_json"
    assert int(headers["casewatch.original.key_bytes"]) == 200_000
    assert int(headers["casewatch.original.value_bytes"]) == 1_000_000
    assert record.key is not None and len(record.key) <= 1024 and key.startswith(record.key)
    assert record.value is not None and value.startswith(record.value)
    assert metric(metrics, "casewatch_oversized_records_total") == 1


def long_case(case_id: str, events: int) -> list[StreamingEvent]:
    names = ["Create PR", "Approve PO 1", "Release PR", "Create PO"]
    return [
        StreamingEvent(case_id, names[i % len(names)], close=i == events - 1) for i in range(events)
    ]


def test_a_model_failing_on_one_case_costs_only_that_case(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """A model that passes check-model but fails inside onnxruntime for cases of 50 or more
    events: the long cases get an error record on the dead-letter topic (case id, reason, model
    version), every other case is evaluated, the daemon keeps running and commits to the end."""
    model = failing_copy(model_path, tmp_path / "fails-at-50.onnx", at_events=50)
    good = case_events(GOOD_CASES)
    long_cases = [*long_case("long-1", 60), *long_case("long-2", 55)]
    daemon = DaemonProcess(kafka_bootstrap, topics, model, tmp_path).start()
    try:
        daemon.wait_ready()
        half = len(good) // 2
        produce_events(kafka_bootstrap, topics["input"], good[:half] + long_cases + good[half:])
        closed = closed_case_ids(kafka_bootstrap, topics, daemon)
        dead = dead_letters(kafka_bootstrap, topics, 2)
        assert_all_committed(kafka_bootstrap, topics)
        assert daemon.process is not None and daemon.process.poll() is None
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()

    assert closed == {e.case_id for e in good}
    assert sorted(r.key or b"" for r in dead) == [b"long-1", b"long-2"]
    for record in dead:
        headers = headers_of(record)
        assert headers["casewatch.error.reason"] == "scoring_failed"
        assert "Gather" in headers["casewatch.error.detail"]
        assert headers["casewatch.model.version"]
        assert b'"trigger":"close"' in (record.value or b"")
    assert metric(metrics, "casewatch_scoring_failures_total") == 2


def test_a_model_failing_on_every_case_stops_the_daemon_with_one_line(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Only a model that fails on every case stops the daemon: exit 1, one log event naming it."""
    model = failing_copy(model_path, tmp_path / "fails-always.onnx", at_events=0)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model, tmp_path, max_batch_size=5, max_batch_wait_ms=20
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], case_events(GOOD_CASES))
        assert daemon.process is not None
        code = daemon.process.wait(timeout=60)
    finally:
        daemon.kill()
    assert code == 1
    failed = [e for e in daemon.log_events() if e.get("event") == "daemon_failed"]
    assert len(failed) == 1 and "every case" in failed[0]["error"]
    unstructured = [line for line in daemon.log_text().splitlines() if not line.startswith("{")]
    assert unstructured == []


def test_unkeyed_input_is_counted_and_warned_about(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Events produced without a key are evaluated, counted in casewatch_unkeyed_events_total
    and named in one warning per partition."""
    good = case_events(10)
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        producer = raw_producer(kafka_bootstrap)
        for event in good:
            producer.produce(topics["input"], value=encode_event(event))
        assert producer.flush(30) == 0
        outputs_after_catch_up(kafka_bootstrap, topics, daemon)
        deadline = time.monotonic() + 10
        while metric(daemon.metrics_text(), "casewatch_unkeyed_events_total") < len(good):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        warnings = [e for e in daemon.log_events() if e.get("event") == "unkeyed_input"]
    finally:
        daemon.kill()
    assert 1 <= len(warnings) <= 4
    assert len({w["partition"] for w in warnings}) == len(warnings)
