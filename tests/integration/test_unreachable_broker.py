"""Brokers that refuse connections: one log stream, a bounded wait, one clear failure.

librdkafka retries such brokers forever and, left to itself, writes a raw line per reconnect.
The commands run here as users run them, without a terminal, so every line must be JSON.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from casewatch.kafka.broker import ensure_topics
from tests.conftest import broker_process, casewatch_command, casewatch_env, stop_process
from tests.integration.daemon_harness import DaemonProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

UNREACHABLE = "127.0.0.1:1"
BUNDLED_LOG = Path(__file__).parents[2] / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
# The commands give up after 15 s at most; the margin is for a loaded machine.
BOUND_SECONDS = 30.0


def timed_run(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=80, check=False)
    return result, time.monotonic() - started


def test_run_logs_only_json_and_fails_within_its_startup_timeout(model_path: Path) -> None:
    env = casewatch_env(
        CASEWATCH_BOOTSTRAP_SERVERS=UNREACHABLE,
        CASEWATCH_MODEL_PATH=str(model_path),
        CASEWATCH_METRICS_PORT="0",
        CASEWATCH_STARTUP_TIMEOUT_SECONDS="5",
    )
    result, elapsed = timed_run(casewatch_command("run"), env)

    assert result.returncode == 1
    assert elapsed < BOUND_SECONDS
    lines = (result.stdout + result.stderr).splitlines()
    events = [json.loads(line) for line in lines]  # raises on a raw librdkafka line
    assert "Traceback" not in result.stderr
    failures = [e for e in events if e["level"] == "error"]
    assert len(failures) == 1, failures
    assert failures[0] == events[-1]
    assert failures[0]["event"] == "daemon_failed"
    assert failures[0]["error"].startswith(f"cannot reach the brokers {UNREACHABLE}")
    assert "Connection refused" in failures[0]["error"]


def test_run_reports_invalid_configuration_as_one_json_line() -> None:
    env = casewatch_env(CASEWATCH_BOOTSTRAP_SERVERS=UNREACHABLE, CASEWATCH_MAX_BATCH_SIZE="many")
    result, _ = timed_run(casewatch_command("run"), env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    event = json.loads(lines[0])
    assert event["event"] == "invalid_configuration"
    assert "CASEWATCH_MAX_BATCH_SIZE" in event["error"]


def test_produce_says_in_one_line_that_the_brokers_cannot_be_reached() -> None:
    args = casewatch_command(
        "produce", str(BUNDLED_LOG), "--topic", "events", "--bootstrap", UNREACHABLE
    )
    result, elapsed = timed_run(args, casewatch_env())

    assert result.returncode == 1
    assert elapsed < BOUND_SECONDS
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"casewatch produce: cannot reach the brokers {UNREACHABLE}")
    assert "Connection refused" in lines[0]


def test_a_broker_that_goes_away_gives_a_few_structured_lines(
    topic_names: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Each client reconnects several times a second; the log says so a few times, not each time."""
    with broker_process() as (bootstrap, broker):
        ensure_topics(bootstrap, [topic_names[n] for n in ("input", "output", "dlq", "changelog")])
        daemon = DaemonProcess(bootstrap, topic_names, model_path, tmp_path).start()
        try:
            daemon.wait_ready()
            stop_process(broker)
            time.sleep(15)
            daemon.stop()
        finally:
            daemon.kill()

    lines = daemon.log_text().splitlines()
    events = [json.loads(line) for line in lines]  # raises on a raw librdkafka line
    kafka = [e for e in events if e["event"] == "kafka_log"]
    refused = [e for e in kafka if "Connection refused" in e["message"]]
    assert refused, lines
    assert all(e["client"] and e["facility"] for e in kafka)
    # Three clients (consumer, producer, restore reader) at a reconnect every 0.1-10 s would
    # write hundreds of lines in 15 s; held back, each says it a few times.
    assert len(kafka) <= 30, [e["message"] for e in kafka]
