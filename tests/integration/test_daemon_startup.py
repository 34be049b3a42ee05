"""Start-up says what is wrong in one line, with the exit code the README gives."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Broker, casewatch_command, casewatch_env
from tests.integration.daemon_harness import DaemonProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def run_daemon(model: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = casewatch_env(
        CASEWATCH_MODEL_PATH=str(model),
        CASEWATCH_METRICS_PORT="0",
        **{f"CASEWATCH_{k.upper()}": v for k, v in settings.items()},
    )
    return subprocess.run(
        casewatch_command("run"), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_an_unreachable_broker_is_retried_then_exits_1_naming_the_cause(
    model_path: Path,
) -> None:
    result = run_daemon(model_path, bootstrap_servers="127.0.0.1:1", startup_timeout_seconds="2")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    failure = json.loads(lines[-1])
    assert failure["event"] == "daemon_failed"
    assert failure["error"].startswith("cannot reach the brokers 127.0.0.1:1")
    assert "Connection refused" in failure["error"]
    retries = [json.loads(line) for line in lines if '"startup_waiting"' in line]
    assert len(retries) >= 2
    assert all("Connection refused" in entry["cause"] for entry in retries)


def test_an_invalid_kafka_property_exits_2_with_one_line(model_path: Path) -> None:
    result = run_daemon(model_path, bootstrap_servers="127.0.0.1:1", kafka__fetch_max_bites="1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CASEWATCH_KAFKA__FETCH_MAX_BITES" in lines[0]


def test_a_misspelt_setting_is_warned_about_with_the_closest_name(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, score_polcy="every_event"
    ).start()
    try:
        daemon.wait_ready()
        warnings = [e for e in daemon.log_events() if e.get("event") == "unknown_setting"]
    finally:
        daemon.kill()
    assert warnings == [
        {**warnings[0], "variable": "CASEWATCH_SCORE_POLCY", "closest": "CASEWATCH_SCORE_POLICY"}
    ]


def test_a_changelog_with_other_partitions_than_the_input_is_refused(
    kafka_broker: Broker, topic_names: dict[str, str], model_path: Path
) -> None:
    if kafka_broker.embedded:
        pytest.skip("the embedded broker creates every topic with 4 partitions")
    from casewatch.kafka.broker import ensure_topics

    ensure_topics(kafka_broker.bootstrap_servers, [topic_names["input"]], partitions=4)
    ensure_topics(kafka_broker.bootstrap_servers, [topic_names["changelog"]], partitions=2)
    result = run_daemon(
        model_path,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        input_topic=topic_names["input"],
        group_id=topic_names["group"],
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "has 2 partitions but input topic" in last


def test_sigterm_while_waiting_for_the_broker_stops_at_once_with_0(
    model_path: Path, tmp_path: Path
) -> None:
    env = casewatch_env(
        CASEWATCH_MODEL_PATH=str(model_path),
        CASEWATCH_METRICS_PORT="0",
        CASEWATCH_BOOTSTRAP_SERVERS="127.0.0.1:1",
        CASEWATCH_STARTUP_TIMEOUT_SECONDS="300",
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(casewatch_command("run"), env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while '"startup_waiting"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_an_input_topic_that_never_appears_exits_1_after_the_bound(
    kafka_bootstrap: str, topic_names: dict[str, str], model_path: Path
) -> None:
    result = run_daemon(
        model_path,
        bootstrap_servers=kafka_bootstrap,
        input_topic=topic_names["input"],
        group_id=topic_names["group"],
        startup_timeout_seconds="2",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert f"input topic {topic_names['input']!r} is not available" in last
