"""Several instances in one consumer group: cases follow their partitions across rebalances."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    outputs_after_catch_up,
    produce_events,
    wait_for_outputs,
)
from tests.integration.state_checks import assert_like_an_uninterrupted_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}


def metric(daemon: DaemonProcess, name: str) -> float:
    for line in daemon.metrics_text().splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_instances_joining_and_leaving_mid_stream_lose_nothing(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(1500)
    cases = {e.case_id for e in events}
    instances = [
        DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path / str(i), **GROUP)
        for i in range(3)
    ]
    for instance in instances:
        instance.log_dir.mkdir()
    first, second, third = instances
    producer = threading.Thread(
        target=produce_events, args=(kafka_bootstrap, topics["input"], events, 2000)
    )
    try:
        first.start()
        second.start()
        first.wait_ready(60)
        producer.start()
        wait_for_outputs(kafka_bootstrap, topics, 0.2 * len(cases), first)
        third.start()  # joins: partitions move to it, with their open cases
        third.wait_ready(60)
        wait_for_outputs(kafka_bootstrap, topics, 0.5 * len(cases), first)
        code = second.stop(signal.SIGTERM)  # leaves: its partitions move to the others
        assert code == 0, second.log_text()
        wait_for_outputs(kafka_bootstrap, topics, 0.7 * len(cases), first)
        second.start()  # and comes back
        producer.join()
        published = outputs_after_catch_up(kafka_bootstrap, topics, first)
        deadline = time.monotonic() + 30
        while sum(metric(i, "casewatch_assigned_partitions") for i in instances) != 4:
            assert time.monotonic() < deadline, "partitions left unassigned"
            time.sleep(0.5)
        restored = sum(metric(i, "casewatch_records_restored_total") for i in instances)
    finally:
        producer.join()
        for instance in instances:
            instance.kill()

    assert restored > 0, "no instance took over open cases"
    assert_like_an_uninterrupted_run(events, published, model_path)
