"""CASEWATCH_WORKERS=2: two daemon processes in one group behind one metrics endpoint."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    http_get,
    outputs_after_catch_up,
    produce_events,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GROUP = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}
STOP_BOUND_SECONDS = 30.0


def samples(text: str, name: str) -> dict[str, float]:
    """``name``'s samples in an exposition, keyed by their label text ('' without labels)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            series, value = line.rsplit(" ", 1)
            found[series.removeprefix(name)] = float(value)
    return found


def test_two_workers_share_the_partitions_and_one_endpoint(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(400)
    cases = {event.case_id for event in events}
    produce_events(kafka_bootstrap, topics["input"], events)
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path, workers=2, **GROUP)
    try:
        daemon.start()
        base = daemon.wait_ready(90)
        published = outputs_after_catch_up(kafka_bootstrap, topics, daemon)

        closes = Counter(e.case_id for e in published if e.trigger == "close")
        assert set(closes) == cases
        assert set(closes.values()) == {1}, "a case was evaluated more than once on close"

        metrics = http_get(base + "/metrics")[1]
        assigned = samples(metrics, "casewatch_assigned_partitions")
        assert len(assigned) == 2 and all(count >= 1 for count in assigned.values()), assigned
        assert sum(assigned.values()) == 4
        # Counters add up over the workers: one unlabelled series with the container's total.
        assert samples(metrics, "casewatch_events_consumed_total") == {"": len(events)}
        assert sum(samples(metrics, "casewatch_evaluations_total").values()) == len(published)
        assert samples(metrics, "casewatch_workers") == {"": 2}
        assert http_get(base + "/healthz") == (200, "ok\n")

        started = time.monotonic()
        code = daemon.stop(signal.SIGTERM, timeout=STOP_BOUND_SECONDS + 10)
        elapsed = time.monotonic() - started
    finally:
        daemon.kill()
    assert code == 0, daemon.log_text()
    assert elapsed < STOP_BOUND_SECONDS, elapsed
    stopped = [r for r in daemon.log_events() if r.get("event") == "daemon_stopped"]
    assert sorted(int(r["worker"]) for r in stopped) == [0, 1]


def test_a_worker_that_dies_stops_the_container(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path, workers=2, **GROUP)
    try:
        daemon.start()
        daemon.wait_ready(90)
        started = [r for r in daemon.log_events() if r.get("event") == "worker_started"]
        worker = next(int(r["pid"]) for r in started if r["worker"] == 1)
        assert daemon.process is not None
        os.kill(worker, signal.SIGKILL)
        code = daemon.process.wait(timeout=STOP_BOUND_SECONDS + 10)
    finally:
        daemon.kill()
    assert code == 1
    assert "worker 1 was ended by signal SIGKILL" in daemon.log_text()
