"""The daemon's HTTP endpoints, and a round trip through an independent Kafka client (kcat)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    http_get,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

EXPECTED_METRICS = (
    "casewatch_events_consumed_total",
    "casewatch_invalid_events_total",
    "casewatch_evaluations_total",
    "casewatch_open_cases",
    "casewatch_batch_size_bucket",
    "casewatch_batch_duration_seconds_bucket",
    "casewatch_scoring_duration_seconds_bucket",
    "casewatch_event_to_evaluation_latency_seconds_bucket",
    "casewatch_trace_score_bucket",
    "casewatch_consumer_lag",
    "casewatch_seconds_since_last_commit",
    "casewatch_last_commit_timestamp_seconds",
    "casewatch_model_info",
    "casewatch_rebalances_total",
    "casewatch_assigned_partitions",
    "casewatch_unknown_activities_total",
    "casewatch_dlq_records_total",
    "casewatch_delivery_errors_total",
    "casewatch_commits_total",
    "casewatch_producer_queue_length",
    "casewatch_paused",
)


def test_metrics_health_and_readiness(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(100)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        base = daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        read_records(kafka_bootstrap, topics["output"], until=len(cases), grace=1.0)
        status, metrics = http_get(base + "/metrics")
        healthz, readyz = http_get(base + "/healthz"), http_get(base + "/readyz")
    finally:
        daemon.kill()

    assert status == 200
    missing = [name for name in EXPECTED_METRICS if name not in metrics]
    assert not missing
    assert f"casewatch_events_consumed_total {len(events)}.0" in metrics
    assert 'casewatch_evaluations_total{anomalous="' in metrics
    assert "casewatch_assigned_partitions 4.0" in metrics
    assert healthz[0] == 200
    assert readyz == (200, "ok\n")


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not on PATH")
def test_round_trip_through_kcat(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"case_id": "k1", "activity": "Create PR"}),
        json.dumps({"case_id": "k2", "activity": "Create PR"}),
        json.dumps({"case_id": "k1", "activity": "Approve PR", "close": True}),
        json.dumps({"case_id": "k2", "activity": "Approve PR", "close": True}),
    ]
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        subprocess.run(
            ["kcat", "-b", kafka_bootstrap, "-P", "-t", topics["input"], "-K", "|"],
            input="".join(f"{json.loads(line)['case_id']}|{line}\n" for line in lines),
            text=True,
            check=True,
            timeout=30,
        )
        consumed = subprocess.run(
            [
                "kcat",
                "-b",
                kafka_bootstrap,
                "-C",
                "-t",
                topics["output"],
                "-o",
                "beginning",
                "-c",
                "2",
                "-f",
                "%k\\t%s\\n",
                "-q",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    finally:
        daemon.kill()

    records = [line.split("\t", 1) for line in consumed.stdout.splitlines() if line]
    assert sorted(key for key, _ in records) == ["k1", "k2"]
    for key, value in records:
        evaluation = json.loads(value)
        assert evaluation["case_id"] == key
        assert evaluation["closed"] is True
        assert evaluation["n_events"] == 2
