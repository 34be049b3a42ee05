"""Bad input goes to the dead-letter topic; a bad model or config stops the daemon at once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from tests.conftest import casewatch_command, casewatch_env
from tests.integration.daemon_harness import (
    QUIET,
    DaemonProcess,
    case_events,
    evaluations,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

BAD_MESSAGES = {
    "not_json": b"{not json",
    "missing_case_id": b'{"activity": "Create PR"}',
    "wrong_type": b'{"case_id": "bad-1", "activity": 42}',
    "oversized": b'{"case_id": "big", "activity": "Create PR", "pad": "' + b"x" * 5000 + b'"}',
}


def test_bad_messages_go_to_the_dead_letter_topic_and_the_loop_keeps_going(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    good = case_events(50)
    cases = {e.case_id for e in good}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, max_message_bytes=4096
    ).start()
    try:
        daemon.wait_ready()
        producer: Any = confluent_kafka.Producer({"bootstrap.servers": kafka_bootstrap, **QUIET})
        for value in BAD_MESSAGES.values():
            # Without a key: the decoder takes the case id from the key when the field is absent.
            producer.produce(topics["input"], value=value)
        producer.flush(10)
        produce_events(kafka_bootstrap, topics["input"], good)
        dead = read_records(kafka_bootstrap, topics["dlq"], until=len(BAD_MESSAGES))
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=len(cases)))
    finally:
        daemon.kill()

    by_reason = {r.headers["casewatch.error.reason"].decode(): r for r in dead}
    assert len(dead) == len(BAD_MESSAGES)
    assert set(by_reason) == set(BAD_MESSAGES)
    for reason, record in by_reason.items():
        assert record.value == BAD_MESSAGES[reason]
        assert record.headers["casewatch.error.reason"] == reason.encode()
        assert record.headers["casewatch.error.detail"]
        assert record.headers["casewatch.source.topic"] == topics["input"].encode()
        assert int(record.headers["casewatch.source.partition"]) >= 0
        assert int(record.headers["casewatch.source.offset"]) >= 0
    assert {e.case_id for e in published if e.closed} == cases


def _run_daemon(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = casewatch_env(
        CASEWATCH_BOOTSTRAP_SERVERS="127.0.0.1:1",
        CASEWATCH_METRICS_PORT="0",
        **{f"CASEWATCH_{k.upper()}": v for k, v in settings.items()},
    )
    return subprocess.run(
        casewatch_command("run"), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_a_missing_model_fails_fast_with_one_line(tmp_path: Path) -> None:
    result = _run_daemon(tmp_path, model_path=str(tmp_path / "absent.onnx"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "absent.onnx" in lines[0]


def test_a_file_that_is_no_model_fails_fast_with_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not an onnx model")
    result = _run_daemon(tmp_path, model_path=str(garbage))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_invalid_configuration_exits_2_with_one_line(tmp_path: Path, model_path: Path) -> None:
    result = _run_daemon(tmp_path, model_path=str(model_path), max_batch_size="-5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CASEWATCH_MAX_BATCH_SIZE" in lines[0]
