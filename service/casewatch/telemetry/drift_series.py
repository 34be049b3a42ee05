"""The drift window's gauges, and the monitor the loop feeds once per iteration.

The loop thread updates the window (``casewatch.telemetry.drift``) and then replaces one
immutable snapshot of the gauge values; the scrape thread only reads that reference, so a
scrape sees one batch's values or the next one's, never a mix. A value the window cannot
give yet (no case, no event, no attribute value) or that needs a training baseline the
model lacks is left out of the exposition rather than shown as 0, which would read as "no
drift".

With ``CASEWATCH_WORKERS`` > 1 every worker keeps its own window over the cases of its
partitions (a sample of the same stream), and the parent's /metrics shows each worker's gauges
under a ``worker`` label like every other gauge (``casewatch.telemetry.aggregate``): the alert
rules judge each worker's window on its own fill, and ``casewatch_drift_window_cases`` /
``casewatch_drift_window_events`` weight them where the dashboard averages over workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from casewatch.telemetry.drift import FINAL_TRIGGERS, Baseline, DriftWindow, EventCounts
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.verdicts import Verdicts

if TYPE_CHECKING:  # telemetry sits below scoring: the types only, not the modules
    from casewatch.scoring.training_summary import TrainingSummary

log = get_logger(__name__)

DEFAULT_DRIFT_WINDOW: Final = 1000
_NEEDS_BASELINE: Final = ("expected_flagged_share", "expected_unknown_value_rate", "score_psi")


class RoutedTotals(Protocol):
    """Running totals the router keeps (``casewatch.scoring.routing.RoutingCounts``)."""

    @property
    def events(self) -> int: ...

    @property
    def unknown_activities(self) -> int: ...

    @property
    def attribute_values(self) -> int: ...

    @property
    def unknown_attribute_values(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DriftValues:
    """One batch's gauge values; None is left out of the exposition."""

    window_size: float = 0.0
    window_cases: float = 0.0
    window_events: float = 0.0
    flagged_share: float | None = None
    expected_flagged_share: float | None = None
    unknown_activity_rate: float | None = None
    unknown_value_rate: float | None = None
    expected_unknown_value_rate: float | None = None
    score_psi: float | None = None


_HELP: Final = {
    "window_size": "Final evaluations the drift window holds when full (CASEWATCH_DRIFT_WINDOW).",
    "window_cases": "Final evaluations in the drift window (its fill, at most "
    "CASEWATCH_DRIFT_WINDOW).",
    "window_events": "Events routed while the drift window's cases closed.",
    "flagged_share": "Share of the drift window's final evaluations that are anomalous.",
    "expected_flagged_share": "Share of the training cases above the model's threshold.",
    "unknown_activity_rate": "Share of the drift window's events whose activity the model does "
    "not know.",
    "unknown_value_rate": "Share of the event attribute values in the drift window the model "
    "does not know.",
    "expected_unknown_value_rate": "Share of attribute values expected to be unknown on new data "
    "of the training process (values seen once in training / values seen).",
    "score_psi": "Population stability index of the drift window's final scores against the "
    "training score bins.",
}


def baseline_of(summary: TrainingSummary) -> Baseline:
    return Baseline(
        edges=np.asarray(summary.score_bins.edges, dtype=np.float64),
        shares=np.asarray(summary.score_bins.shares, dtype=np.float64),
        flagged_share=summary.flagged_share,
        unknown_value_rate=summary.expected_unknown_value_rate,
    )


class DriftMonitor(Collector):
    """``casewatch_drift_*`` gauges over a window of the last ``window`` final evaluations."""

    def __init__(self, registry: CollectorRegistry, prefix: str, window: int) -> None:
        self._prefix = prefix
        self.window = DriftWindow(window)
        self._baseline: Baseline | None = None
        self._totals: RoutedTotals | None = None
        self._seen = EventCounts()
        self.values = DriftValues(window_size=float(window))
        registry.register(self)

    def bind(self, totals: RoutedTotals) -> None:
        """Read event counts from ``totals`` from now on (the evaluator's router counts)."""
        self._totals = totals
        self._seen = self._read(totals)

    def use_model(self, summary: TrainingSummary | None, model: str) -> None:
        """Start an empty window judged against ``summary`` (at start-up and on a reload)."""
        self._baseline = None if summary is None else baseline_of(summary)
        self.window.reset(None if self._baseline is None else self._baseline.edges)
        self._publish()
        if summary is None:
            log.info(
                "drift_baseline_missing",
                model=model,
                absent=[f"{self._prefix}_drift_{name}" for name in _NEEDS_BASELINE],
                hint="retrain with `casewatch train` to store a training summary in the model",
            )

    def observe(self, verdicts: Verdicts | None) -> None:
        """Once per loop iteration, after publishing: the final evaluations enter the window,
        with the events the router counted meanwhile."""
        final = False
        if verdicts is not None:
            at = np.flatnonzero([t in FINAL_TRIGGERS for t in verdicts.triggers])
            if at.size:
                self.window.add_cases(verdicts.trace_scores[at], verdicts.anomalous[at])
                final = True
        routed = self._routed_since_last()
        if final or routed.events:
            self.window.add_events(routed)
            self._publish()

    def _routed_since_last(self) -> EventCounts:
        if self._totals is None:
            return EventCounts()
        now = self._read(self._totals)
        delta = EventCounts()
        delta.add(now)
        delta.subtract(self._seen)
        self._seen = now
        return delta

    @staticmethod
    def _read(totals: RoutedTotals) -> EventCounts:
        return EventCounts(
            events=totals.events,
            unknown_activities=totals.unknown_activities,
            values=totals.attribute_values,
            unknown_values=totals.unknown_attribute_values,
        )

    def _publish(self) -> None:
        window, baseline = self.window, self._baseline
        self.values = DriftValues(
            window_size=float(window.size),
            window_cases=float(window.fill),
            window_events=float(window.events),
            flagged_share=window.flagged_share,
            expected_flagged_share=None if baseline is None else baseline.flagged_share,
            unknown_activity_rate=window.unknown_activity_rate,
            unknown_value_rate=window.unknown_value_rate,
            expected_unknown_value_rate=None if baseline is None else baseline.unknown_value_rate,
            score_psi=None if baseline is None else window.psi(baseline.shares),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        values = self.values
        for field in fields(values):
            family = GaugeMetricFamily(f"{self._prefix}_drift_{field.name}", _HELP[field.name])
            value = getattr(values, field.name)
            if value is not None:
                family.add_metric([], value)
            yield family
