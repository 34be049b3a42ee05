"""Drift gauges of a running daemon with the bundled model (trained on the first half of a p2p
log): a stream of another process, produced by ``casewatch produce`` from its own process,
moves the score PSI and the unknown-activity rate past the alert rules' thresholds, and a model
reload starts the window again; held-out cases of the training log keep every signal below."""

from __future__ import annotations

import csv
import gzip
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BUNDLED_LOG, ROOT, casewatch_command, casewatch_env
from tests.integration.daemon_harness import DaemonProcess, http_get
from tests.integration.test_model_reload import relabelled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

OTHER_LOG = ROOT.parent / "shared" / "data" / "eventlogs" / "bpic13-0.3-1.csv.gz"
ALERTS = ROOT / "config" / "alerts.yml"
WINDOW = 300
CASES = 450


def alert_threshold(alert: str, metric: str) -> float:
    """The number ``metric`` is compared with (``metric{...} > N``) in the rule ``alert``."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    found = re.search(re.escape(metric) + r"\{[^}]*\}\s*>\s*([0-9.]+)", rule["expr"])
    assert found, f"{alert}: no '{metric} > N' in its expression"
    return float(found.group(1))


def held_out_log(target: Path) -> Path:
    """The cases of the bundled log the reference model was not fitted on (its second half)."""
    with gzip.open(BUNDLED_LOG, "rt", encoding="utf-8", newline="") as source:
        rows = list(csv.reader(source))
    header, body = rows[0], rows[1:]
    case_ids = list(dict.fromkeys(row[0] for row in body))
    later = set(case_ids[len(case_ids) // 2 :])
    with gzip.open(target, "wt", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(row for row in body if row[0] in later)
    return target


def produce(bootstrap: str, topic: str, log: Path) -> None:
    """``casewatch produce`` in a process of its own."""
    argv = ["produce", str(log), "--topic", topic, "--bootstrap", bootstrap]
    subprocess.run(
        casewatch_command(*argv, "--limit-cases", str(CASES)),
        env=casewatch_env(),
        check=True,
        capture_output=True,
        timeout=120,
    )


def drift_gauges(daemon: DaemonProcess) -> dict[str, float]:
    return {
        sample.name.removeprefix("casewatch_drift_"): sample.value
        for family in text_string_to_metric_families(daemon.metrics_text())
        for sample in family.samples
        if sample.name.startswith("casewatch_drift_")
    }


def wait_for_full_window(daemon: DaemonProcess, timeout: float = 120) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while (gauges := drift_gauges(daemon)).get("window_cases", 0) < WINDOW:
        assert time.monotonic() < deadline, f"{gauges}\n{daemon.log_text()}"
        time.sleep(0.2)
    return gauges


def run_stream(
    bootstrap: str, topics: dict[str, str], model: Path, log: Path, tmp_path: Path
) -> tuple[DaemonProcess, dict[str, float]]:
    daemon = DaemonProcess(bootstrap, topics, model, tmp_path, drift_window=WINDOW).start()
    daemon.wait_ready(60)
    produce(bootstrap, topics["input"], log)
    return daemon, wait_for_full_window(daemon)


@pytest.mark.skipif(not OTHER_LOG.exists(), reason=f"shared event log {OTHER_LOG} not found")
def test_another_process_moves_psi_and_unknown_activities_past_the_alerts(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live.onnx"
    live.write_bytes(model_path.read_bytes())
    daemon, gauges = run_stream(kafka_bootstrap, topics, live, OTHER_LOG, tmp_path)
    try:
        assert gauges["window_size"] == WINDOW
        assert gauges["score_psi"] > alert_threshold(
            "CasewatchScoreDrift", "casewatch_drift_score_psi"
        )
        assert gauges["unknown_activity_rate"] > alert_threshold(
            "CasewatchUnknownActivities", "casewatch_drift_unknown_activity_rate"
        )
        # A reloaded model is judged on a window of its own.
        relabelled(model_path, "reloaded", live)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while (after := drift_gauges(daemon))["window_cases"] != 0:
            assert time.monotonic() < deadline, f"{after}\n{daemon.log_text()}"
            time.sleep(0.1)
        assert "score_psi" not in after and "flagged_share" not in after
        assert "expected_flagged_share" in after
        assert any(e.get("event") == "model_loaded" for e in daemon.log_events())
    finally:
        daemon.kill()


def test_held_out_cases_of_the_training_log_stay_below_every_threshold(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    log = held_out_log(tmp_path / "p2p-held-out.csv.gz")
    daemon, gauges = run_stream(kafka_bootstrap, topics, model_path, log, tmp_path)
    daemon.kill()
    assert gauges["score_psi"] < alert_threshold("CasewatchScoreDrift", "casewatch_drift_score_psi")
    assert gauges["unknown_activity_rate"] < alert_threshold(
        "CasewatchUnknownActivities", "casewatch_drift_unknown_activity_rate"
    )
    assert gauges["unknown_value_rate"] < alert_threshold(
        "CasewatchUnknownValues", "casewatch_drift_unknown_value_rate"
    )
    expected = gauges["expected_flagged_share"]
    assert 0.5 * expected - 0.05 < gauges["flagged_share"] < 1.5 * expected + 0.05
    # No drift line was needed: the bundled model carries its training summary.
    assert not any(e.get("event") == "drift_baseline_missing" for e in daemon.log_events())


@pytest.mark.skipif(not OTHER_LOG.exists(), reason=f"shared event log {OTHER_LOG} not found")
def test_each_worker_reports_its_own_window(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    window = 100
    group = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, workers=2, drift_window=window, **group
    )
    try:
        daemon.start()
        base = daemon.wait_ready(90)
        produce(kafka_bootstrap, topics["input"], OTHER_LOG)
        deadline = time.monotonic() + 120
        while True:
            page = http_get(base + "/metrics")[1]
            by_worker = {
                (sample.name, sample.labels.get("worker")): sample.value
                for family in text_string_to_metric_families(page)
                for sample in family.samples
                if sample.name.startswith("casewatch_drift_")
            }
            fills = [by_worker.get(("casewatch_drift_window_cases", w), 0) for w in ("0", "1")]
            if min(fills) >= window:
                break
            assert time.monotonic() < deadline, f"{by_worker}\n{daemon.log_text()}"
            time.sleep(0.2)
    finally:
        daemon.kill()
    psi = alert_threshold("CasewatchScoreDrift", "casewatch_drift_score_psi")
    for worker in ("0", "1"):
        assert by_worker["casewatch_drift_window_size", worker] == window
        assert by_worker["casewatch_drift_score_psi", worker] > psi
    # Gauges are per-process facts: no unlabelled container-wide series is made up.
    assert ("casewatch_drift_score_psi", None) not in by_worker
