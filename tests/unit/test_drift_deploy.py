"""The drift gauges reach the operator: every one is on the dashboard, each drift signal has an
alert rule that waits for a half-full window, and the gauges keep their per-worker values when
several workers' metrics are merged."""

from __future__ import annotations

from prometheus_client import generate_latest

from casewatch.scoring.routing import RoutingCounts
from casewatch.telemetry.aggregate import merge
from casewatch.telemetry.metrics import Telemetry
from tests.unit.test_deploy import (
    alert_rules,
    dashboard_panels,
    exported_metric_names,
    promql_metric_names,
)

DRIFT_SIGNALS = {
    "CasewatchScoreDrift": "casewatch_drift_score_psi",
    "CasewatchUnknownActivities": "casewatch_drift_unknown_activity_rate",
    "CasewatchUnknownValues": "casewatch_drift_unknown_value_rate",
    "CasewatchFlaggedShareDrift": "casewatch_drift_flagged_share",
}


def drift_metrics() -> set[str]:
    return {name for name in exported_metric_names() if name.startswith("casewatch_drift_")}


def test_the_dashboard_shows_every_drift_gauge() -> None:
    shown = {
        name
        for panel in dashboard_panels()
        for target in panel["targets"]
        for name in promql_metric_names(target["expr"])
    }
    assert len(drift_metrics()) == 9
    assert drift_metrics() <= shown, sorted(drift_metrics() - shown)


def test_each_drift_signal_has_a_rule_gated_on_the_window_fill() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for alert, metric in DRIFT_SIGNALS.items():
        rule = rules[alert]
        names = promql_metric_names(rule["expr"])
        assert metric in names, alert
        assert {"casewatch_drift_window_cases", "casewatch_drift_window_size"} <= names, alert
        assert rule["for"], alert


def test_worker_gauges_stay_per_worker_when_merged() -> None:
    pages = []
    for unknown in (1, 3):
        telemetry = Telemetry(drift_window=10)
        counts = RoutingCounts()
        telemetry.drift.bind(counts)
        telemetry.drift.use_model(None, "bare")
        counts.events, counts.unknown_activities = 10, unknown
        telemetry.drift.observe(None)
        pages.append(generate_latest(telemetry.registry).decode())
    families = {family.name: family for family in merge(pages)}
    rates = families["casewatch_drift_unknown_activity_rate"].samples
    assert sorted((s.labels["worker"], s.value) for s in rates) == [("0", 0.1), ("1", 0.3)]
    # Without a training baseline the PSI stays absent in the merged page as well.
    assert not families["casewatch_drift_score_psi"].samples
