"""A real Prometheus server scraping a running daemon, with config/alerts.yml loaded."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, stop_process
from tests.integration.daemon_harness import DaemonProcess, case_events, http_get, produce_events

PROMETHEUS = shutil.which("prometheus")
ALERTS = ROOT / "config" / "alerts.yml"
DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "casewatch.json"
JOB = "casewatch"
# Prometheus gets this long to answer /-/ready, then each test's waits share one budget.
READY_SECONDS = 15.0
BUDGET_SECONDS = 40.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="the prometheus server is not on PATH (Debian/Ubuntu: apt-get install prometheus)",
    ),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, base: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.base = base
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.base}{path}{query}")
        assert status == 200, f"{path} {params}: HTTP {status} {body}"
        payload = json.loads(body)
        assert payload["status"] == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_for(
    condition: Callable[[], bool], deadline: float, what: str, detail: Callable[[], str]
) -> None:
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{detail()}")


@pytest.fixture
def daemon(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> Iterator[tuple[DaemonProcess, str]]:
    process = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        yield process, process.wait_ready()
    finally:
        process.kill()


@pytest.fixture
def prometheus(daemon: tuple[DaemonProcess, str], tmp_path: Path) -> Iterator[Prometheus]:
    assert PROMETHEUS is not None
    target = urllib.parse.urlsplit(daemon[1]).netloc
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + READY_SECONDS
        wait_for(
            lambda: process.poll() is None and http_get(f"{server.base}/-/ready")[0] == 200,
            deadline,
            "Prometheus to be ready",
            server.log_text,
        )
        yield server
    finally:
        stop_process(process)


def test_prometheus_scrapes_the_daemon_and_loads_the_alerts(
    prometheus: Prometheus,
    daemon: tuple[DaemonProcess, str],
    kafka_bootstrap: str,
    topics: dict[str, str],
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    events = case_events(40)
    cases = {event.case_id for event in events}
    produced = produce_events(kafka_bootstrap, topics["input"], events)
    assert produced == len(events)

    def detail() -> str:
        return f"prometheus log:\n{prometheus.log_text()}\ndaemon log:\n{daemon[0].log_text()}"

    consumed = f'casewatch_events_consumed_total{{job="{JOB}"}}'
    wait_for(lambda: prometheus.scalar(consumed) == len(events), deadline, consumed, detail)
    evaluations = f'sum(casewatch_evaluations_total{{job="{JOB}"}})'
    wait_for(lambda: prometheus.scalar(evaluations) == len(cases), deadline, evaluations, detail)

    assert prometheus.scalar(f'up{{job="{JOB}"}}') == 1
    open_cases = f'casewatch_open_cases{{job="{JOB}"}}'
    wait_for(lambda: prometheus.scalar(open_cases) == 0, deadline, open_cases, detail)
    # One series per trigger and verdict, created before the first evaluation.
    by_label = prometheus.query(f'casewatch_evaluations_total{{job="{JOB}", trigger="close"}}')
    assert {r["metric"]["anomalous"] for r in by_label} == {"true", "false"}
    targets = prometheus.api("/api/v1/targets")["activeTargets"]
    assert [(t["labels"]["job"], t["health"]) for t in targets] == [(JOB, "up")]

    expected = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }

    def alert_rules() -> list[dict[str, Any]]:
        groups = prometheus.api("/api/v1/rules", type="alert")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    # Every rule is evaluated by the real engine without an error and, the daemon being
    # healthy, none is pending or firing. (CasewatchTargetMissing is pending until the first
    # evaluation after the first scrape.)
    def settled() -> bool:
        rules = alert_rules()
        return all(rule["health"] == "ok" and rule["state"] == "inactive" for rule in rules)

    wait_for(
        settled,
        deadline,
        "every alert rule to evaluate, healthy and inactive",
        lambda: json.dumps(alert_rules(), indent=1),
    )
    rules = alert_rules()
    assert {rule["name"] for rule in rules} == expected
    assert all(rule["type"] == "alerting" for rule in rules)


def test_dashboard_queries_evaluate_on_prometheus(
    prometheus: Prometheus, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    """Every panel query of the Grafana dashboard parses and returns data on a real server."""
    deadline = time.monotonic() + BUDGET_SECONDS
    events = case_events(10)
    produce_events(kafka_bootstrap, topics["input"], events)
    consumed = f'casewatch_events_consumed_total{{job="{JOB}"}}'
    wait_for(
        lambda: prometheus.scalar(consumed) == len(events),
        deadline,
        consumed,
        prometheus.log_text,
    )
    # rate() needs two samples in its window: wait for a few scrapes (1 s apart).
    samples = f'count_over_time(casewatch_up{{job="{JOB}"}}[10s])'
    wait_for(
        lambda: (prometheus.scalar(samples) or 0) >= 4,
        deadline,
        "a few scrapes",
        prometheus.log_text,
    )
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    assert exprs
    empty = []
    for expr in exprs:
        concrete = expr.replace("$__rate_interval", "10s").replace("$instance", ".*")
        if not prometheus.query(concrete):
            empty.append(expr)
    # Only the invalid-events breakdown has no series before the first undecodable message.
    assert all("casewatch_invalid_events_total" in e for e in empty), empty
