from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from casewatch.daemon.decode import INVALID_REASONS
from casewatch.errors import ConfigError
from casewatch.telemetry.health import Health
from casewatch.telemetry.metrics import Telemetry
from casewatch.telemetry.server import ProbeServer

EXPECTED = {
    "casewatch_up",
    "casewatch_events_consumed",
    "casewatch_invalid_events",
    "casewatch_evaluations",
    "casewatch_open_cases",
    "casewatch_batch_size",
    "casewatch_batch_duration_seconds",
    "casewatch_scoring_duration_seconds",
    "casewatch_event_to_evaluation_latency_seconds",
    "casewatch_trace_score",
    "casewatch_consumer_lag",
    "casewatch_last_commit_timestamp_seconds",
    "casewatch_seconds_since_last_commit",
    "casewatch_model",
    "casewatch_rebalances",
    "casewatch_assigned_partitions",
    "casewatch_unknown_activities",
    "casewatch_dlq_records",
    "casewatch_alerts",
    "casewatch_oversized_records",
    "casewatch_scoring_failures",
    "casewatch_unkeyed_events",
    "casewatch_delivery_errors",
    "casewatch_commits",
    "casewatch_producer_queue_length",
    "casewatch_paused",
    "casewatch_restoring",
    "casewatch_restore_duration_seconds",
    "casewatch_records_restored",
    "casewatch_changelog_records",
    "casewatch_offsets_out_of_range",
    "casewatch_model_load_failures",
    "casewatch_threshold",
    "casewatch_anomalies",
    # The drift window (casewatch.telemetry.drift_series).
    "casewatch_drift_window_size",
    "casewatch_drift_window_cases",
    "casewatch_drift_window_events",
    "casewatch_drift_flagged_share",
    "casewatch_drift_expected_flagged_share",
    "casewatch_drift_unknown_activity_rate",
    "casewatch_drift_unknown_value_rate",
    "casewatch_drift_expected_unknown_value_rate",
    "casewatch_drift_score_psi",
}
# What the process, platform and GC collectors add (Linux, CPython).
RUNTIME = {
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds",
    "process_open_fds",
    "process_max_fds",
    "python_info",
    "python_gc_objects_collected",
    "python_gc_objects_uncollectable",
    "python_gc_collections",
}


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(liveness_timeout_seconds=30, invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metric_names_follow_prometheus_rules(telemetry: Telemetry) -> None:
    families = {family.name: family for family in telemetry.registry.collect()}
    assert set(families) == EXPECTED | RUNTIME
    for name, family in families.items():
        if name in RUNTIME:
            continue
        assert re.fullmatch(r"casewatch_[a-z0-9_]+", name), name
        assert family.documentation, name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), name
        if "duration" in name or "latency" in name:
            assert name.endswith("_seconds"), name


def test_known_labels_are_pre_resolved(telemetry: Telemetry) -> None:
    assert set(telemetry.invalid_by_reason) == set(INVALID_REASONS)
    assert ("close", True) in telemetry.evaluations_by
    assert set(telemetry.rebalances_by_kind) == {"assign", "revoke", "lost"}


def test_threshold_is_exported_from_the_model_load_on(telemetry: Telemetry) -> None:
    # A quiet stream must not hide the threshold from the dashboards until a case is scored.
    telemetry.set_model("reference", "1", "ab" * 32, threshold=2.5)
    assert telemetry.registry.get_sample_value(
        "casewatch_threshold", {"model": "reference", "version": "1"}
    ) == pytest.approx(2.5)
    telemetry.set_model("reference", "2", "cd" * 32, threshold=3.0)
    assert (
        telemetry.registry.get_sample_value(
            "casewatch_threshold", {"model": "reference", "version": "1"}
        )
        is None
    )
    assert telemetry.registry.get_sample_value(
        "casewatch_threshold", {"model": "reference", "version": "2"}
    ) == pytest.approx(3.0)


def test_serve_metrics_and_probes(telemetry: Telemetry) -> None:
    telemetry.events_consumed.inc(5)
    telemetry.count_invalid("not_json")
    telemetry.count_evaluation("close", True)
    telemetry.latency_event_time.observe_many(np.array([0.2]))
    telemetry.set_consumer_lag(3, 17)
    telemetry.set_model("reference", "1", "ab" * 32)
    telemetry.mark_commit()

    host, port = telemetry.serve("127.0.0.1", 0)
    assert port > 0
    base = f"http://{host}:{port}"

    status, body = fetch(f"{base}/metrics")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert samples["casewatch_events_consumed_total", ()] == 5
    assert samples["casewatch_invalid_events_total", (("reason", "not_json"),)] == 1
    assert samples["casewatch_invalid_events_total", (("reason", "empty"),)] == 0
    assert (
        samples["casewatch_evaluations_total", (("anomalous", "true"), ("trigger", "close"))] == 1
    )
    assert samples["casewatch_consumer_lag", (("partition", "3"),)] == 17
    assert samples["casewatch_commits_total", ()] == 1
    assert samples["casewatch_up", ()] == 1
    assert 0 <= samples["casewatch_seconds_since_last_commit", ()] < 60
    model = (("name", "reference"), ("sha256", "ab" * 32), ("version", "1"))
    assert samples["casewatch_model_info", model] == 1

    assert fetch(f"{base}/healthz") == (200, "ok\n")
    status, reason = fetch(f"{base}/readyz")
    assert status == 503
    assert reason == "model not loaded\n"

    telemetry.set_model_loaded(True)
    assert fetch(f"{base}/readyz") == (503, "no partitions assigned\n")
    telemetry.set_assigned(True)
    telemetry.set_restoring(True)
    assert fetch(f"{base}/readyz") == (503, "restoring case state\n")
    telemetry.set_restoring(False)
    assert fetch(f"{base}/readyz") == (200, "ok\n")
    assert fetch(f"{base}/nothing-here")[0] == 404


def test_openmetrics_negotiation(telemetry: Telemetry) -> None:
    host, port = telemetry.serve("127.0.0.1", 0)
    request = urllib.request.Request(
        f"http://{host}:{port}/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.read().decode().endswith("# EOF\n")


def test_forget_partitions(telemetry: Telemetry) -> None:
    telemetry.set_consumer_lag(1, 5)
    telemetry.forget_partitions([1, 2])
    lag = next(f for f in telemetry.registry.collect() if f.name == "casewatch_consumer_lag")
    assert lag.samples == []


def test_liveness_times_out() -> None:
    health = Health(liveness_timeout_seconds=0.05)
    assert health.liveness()[0]
    time.sleep(0.1)
    alive, reason = health.liveness()
    assert not alive
    assert "silent" in reason
    health.heartbeat()
    assert health.liveness() == (True, "ok")


def test_close_is_idempotent_and_frees_port(telemetry: Telemetry) -> None:
    host, port = telemetry.serve("127.0.0.1", 0)
    telemetry.close()
    telemetry.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=1)


def test_port_in_use_is_config_error(telemetry: Telemetry) -> None:
    _, port = telemetry.serve("127.0.0.1", 0)
    other = Telemetry()
    with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
        other.serve("127.0.0.1", port)


def test_the_probe_server_serves_any_registry_and_health() -> None:
    registry = CollectorRegistry()
    Counter("other_things", "Things counted elsewhere.", registry=registry).inc(3)
    health = Health()
    server = ProbeServer(registry, health)
    host, port = server.serve("127.0.0.1", 0)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            server.serve("127.0.0.1", 0)
        status, body = fetch(f"http://{host}:{port}/metrics")
        assert status == 200 and "other_things_total 3.0" in body
        assert fetch(f"http://{host}:{port}/readyz") == (503, "model not loaded\n")
        health.set_model_loaded(True)
        health.set_assigned(True)
        assert fetch(f"http://{host}:{port}/readyz") == (200, "ok\n")
    finally:
        server.close()


def test_a_liveness_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="liveness_timeout_seconds"):
        Telemetry(liveness_timeout_seconds=0)


def test_the_page_has_runtime_series_and_no_created_series(telemetry: Telemetry) -> None:
    telemetry.events_consumed.inc()
    telemetry.batch_duration.observe(0.01)
    telemetry.count_evaluation("close", True)
    page = generate_latest(telemetry.registry).decode()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }
    assert not [name for name in samples if name.endswith("_created")]
    assert "casewatch_events_consumed_total" in samples
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["process_start_time_seconds"] > 0
    assert samples["process_open_fds"] > 0
    assert "python_info" in samples
    assert "python_gc_collections_total" in samples
