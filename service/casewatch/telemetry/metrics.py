"""The daemon's Prometheus metric families, and ``Telemetry``: those metrics with health and server.

Every metric lives in the instance's own registry and is created, with its known label children,
in ``__init__``: the processing loop only calls ``inc``/``set``/``observe`` on ready objects. The
exceptions are the threshold and blamed-activity children, whose label values come with the
evaluations (``casewatch.telemetry.model_series``). The registry also carries the process,
interpreter and garbage-collector series, and no ``_created`` series.
``Telemetry`` adds the health state (``casewatch.telemetry.health``) and the HTTP thread that
serves both (``casewatch.telemetry.server``), so the loop reaches everything it reports through
one object.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from casewatch.events import ModelIdentity
from casewatch.telemetry.drift_series import DEFAULT_DRIFT_WINDOW, DriftMonitor
from casewatch.telemetry.health import Health
from casewatch.telemetry.histograms import BatchHistogram
from casewatch.telemetry.model_series import ModelSeries
from casewatch.telemetry.server import ProbeServer

PREFIX: Final = "casewatch"
TRIGGERS: Final = ("close", "event", "timeout", "evicted", "request")
REBALANCE_KINDS: Final = ("assign", "revoke", "lost")
LATENCY_CLOCKS: Final = ("event_time", "ingest_time")
ALERT_KINDS: Final = ("opened", "closed")

_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Event-time latency spans sub-second streaming to replays of logs that are days old.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
_SCORE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
_RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """Every metric family the daemon exposes, grouped by the stage of the flow it describes."""

    def __init__(
        self, *, invalid_reasons: Iterable[str] = (), drift_window: int = DEFAULT_DRIFT_WINDOW
    ) -> None:
        # Every counter and histogram would otherwise carry a ``_created`` twin that no query
        # reads. The switch is process-wide and must be set before the first scrape.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        # The default registry's process (CPU, RSS, open fds), interpreter and garbage-collector
        # series, which a custom registry lacks unless they are registered on it.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._last_commit = time.time()
        self._declare_intake(invalid_reasons)
        self._declare_scoring()
        self._declare_outputs()
        self._declare_partitions()
        self._declare_state()
        self.drift = DriftMonitor(self.registry, PREFIX, drift_window)

    def _counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", documentation, buckets=buckets, registry=self.registry)

    def _declare_intake(self, invalid_reasons: Iterable[str]) -> None:
        self.up = self._gauge("up", "1 while the daemon runs.")
        self.up.set(1)
        self.events_consumed = self._counter("events_consumed", "Input messages consumed.")
        self.invalid_events = self._counter(
            "invalid_events", "Input messages that could not be decoded, by reason.", ["reason"]
        )
        self.invalid_by_reason = {
            reason: self.invalid_events.labels(reason) for reason in invalid_reasons
        }
        self.unkeyed_events = self._counter(
            "unkeyed_events",
            "Input events without a Kafka key: their cases may be split across partitions.",
        )
        self.unknown_activities = self._counter(
            "unknown_activities", "Events whose activity the model does not know."
        )
        self.batch_size = self._histogram(
            "batch_size", "Messages per consumed batch.", _BATCH_SIZE_BUCKETS
        )
        self.batch_duration = self._histogram(
            "batch_duration_seconds",
            "Time to process one batch, consume to publish.",
            _DURATION_BUCKETS,
        )

    def _declare_scoring(self) -> None:
        self.evaluations = self._counter(
            "evaluations",
            "Evaluations published, by trigger and verdict.",
            ["trigger", "anomalous"],
        )
        self.evaluations_by = {
            (trigger, anomalous): self.evaluations.labels(trigger, str(anomalous).lower())
            for trigger in TRIGGERS
            for anomalous in (False, True)
        }
        self.scoring_duration = self._histogram(
            "scoring_duration_seconds",
            "Time of one scorer run over the due cases of a batch.",
            _DURATION_BUCKETS,
        )
        self.event_to_evaluation_latency = BatchHistogram(
            f"{PREFIX}_event_to_evaluation_latency_seconds",
            "From a case's last event to its evaluation; event_time uses the event timestamp, "
            "ingest_time the moment the message was consumed.",
            _LATENCY_BUCKETS,
            label="clock",
            label_values=LATENCY_CLOCKS,
            registry=self.registry,
        )
        self.latency_event_time = self.event_to_evaluation_latency.labels("event_time")
        self.latency_ingest_time = self.event_to_evaluation_latency.labels("ingest_time")
        self.trace_score = BatchHistogram(
            f"{PREFIX}_trace_score",
            "Trace scores of published evaluations.",
            _SCORE_BUCKETS,
            registry=self.registry,
        )
        self.scoring_failures = self._counter(
            "scoring_failures",
            "Case evaluations the model failed on, sent to the dead-letter topic instead.",
        )
        self.model = Info(f"{PREFIX}_model", "The scorer in use.", registry=self.registry)
        self.model_series = ModelSeries(self.registry, PREFIX)
        self.model_load_failures = self._counter(
            "model_load_failures", "Models that failed to load or validate."
        )

    def _declare_outputs(self) -> None:
        self.dlq_records = self._counter("dlq_records", "Records sent to the dead-letter topic.")
        self.oversized_records = self._counter(
            "oversized_records",
            "Output records too large for the broker, replaced by a truncated dead-letter record.",
        )
        self.delivery_errors = self._counter(
            "delivery_errors", "Output records the broker failed to take."
        )
        self.alerts = self._counter("alerts", "Case alerts published, by kind.", ["kind"])
        self.alerts_by_kind = {kind: self.alerts.labels(kind) for kind in ALERT_KINDS}
        self.producer_queue_length = self._gauge(
            "producer_queue_length", "Output records awaiting delivery."
        )
        self.paused = self._gauge("paused", "1 while consumption is paused for back-pressure.")
        self.commits = self._counter("commits", "Successful offset commits.")
        self.last_commit_timestamp = self._gauge(
            "last_commit_timestamp_seconds", "Unix time of the last successful checkpoint."
        )
        self.last_commit_timestamp.set(self._last_commit)
        self.seconds_since_last_commit = self._gauge(
            "seconds_since_last_commit",
            "Seconds since the last successful checkpoint (since start before the first one).",
        )
        self.seconds_since_last_commit.set_function(lambda: time.time() - self._last_commit)

    def _declare_partitions(self) -> None:
        self.consumer_lag = self._gauge(
            "consumer_lag",
            "Messages between the high watermark and the consumed position, by partition.",
            ["partition"],
        )
        self.rebalances = self._counter(
            "rebalances", "Partition rebalance events, by kind.", ["kind"]
        )
        self.rebalances_by_kind = {kind: self.rebalances.labels(kind) for kind in REBALANCE_KINDS}
        self.assigned_partitions = self._gauge("assigned_partitions", "Input partitions assigned.")
        self.offsets_out_of_range = self._counter(
            "offsets_out_of_range",
            "Assigned partitions whose committed offset was no longer in the log.",
        )

    def _declare_state(self) -> None:
        self.open_cases = self._gauge("open_cases", "Cases held in memory.")
        self.restoring = self._gauge(
            "restoring", "1 while case state is restored from the changelog."
        )
        self.restore_duration = self._histogram(
            "restore_duration_seconds",
            "Time to restore one partition's cases from the changelog.",
            _RESTORE_BUCKETS,
        )
        self.records_restored = self._counter(
            "records_restored", "Changelog records read while restoring."
        )
        self.changelog_records = self._counter(
            "changelog_records", "State records written to the changelog (tombstones included)."
        )

    def count_invalid(self, reason: str) -> None:
        child = self.invalid_by_reason.get(reason)
        if child is None:
            child = self.invalid_by_reason[reason] = self.invalid_events.labels(reason)
        child.inc()

    def count_evaluation(self, trigger: str, anomalous: bool, count: int = 1) -> None:
        child = self.evaluations_by.get((trigger, anomalous))
        if child is None:
            child = self.evaluations.labels(trigger, str(anomalous).lower())
            self.evaluations_by[trigger, anomalous] = child
        child.inc(count)

    def set_consumer_lag(self, partition: int, lag: int) -> None:
        self.consumer_lag.labels(str(partition)).set(lag)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop the per-partition series of partitions this instance no longer owns."""
        for partition in partitions:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(str(partition))

    def mark_commit(self, at: float | None = None) -> None:
        """Record a successful checkpoint at Unix time ``at`` (now by default)."""
        self._last_commit = time.time() if at is None else at
        self.last_commit_timestamp.set(self._last_commit)
        self.commits.inc()

    def set_model(
        self, name: str, version: str, sha256: str, *, threshold: float | None = None
    ) -> None:
        self.model.info({"name": name, "version": version, "sha256": sha256})
        if threshold is not None:
            self.model_series.use(ModelIdentity(name, version, sha256), threshold)


class Telemetry(Metrics):
    """The daemon's metrics, its health state and the HTTP server that exposes both."""

    def __init__(
        self,
        *,
        liveness_timeout_seconds: float = 30.0,
        invalid_reasons: Iterable[str] = (),
        drift_window: int = DEFAULT_DRIFT_WINDOW,
    ) -> None:
        super().__init__(invalid_reasons=invalid_reasons, drift_window=drift_window)
        self.health = Health(liveness_timeout_seconds)
        self._server = ProbeServer(self.registry, self.health)

    def heartbeat(self) -> None:
        self.health.heartbeat()

    def set_assigned(self, assigned: bool) -> None:
        self.health.set_assigned(assigned)

    def set_model_loaded(self, loaded: bool) -> None:
        self.health.set_model_loaded(loaded)

    def set_restoring(self, restoring: bool) -> None:
        self.health.set_restoring(restoring)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP server thread; returns the bound address (port 0 picks a free port)."""
        return self._server.serve(host, port)

    def close(self) -> None:
        """Stop the HTTP server; safe to call more than once."""
        self._server.close()
