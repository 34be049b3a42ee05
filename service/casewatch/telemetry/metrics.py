"""Prometheus metrics and health probes, served from one background HTTP thread.

Every metric lives in the ``Telemetry`` instance's own registry and is created, with its known
label children, in ``__init__``: the processing loop only calls ``inc``/``set``/``observe`` on
ready objects. ``/metrics`` is the exposition, ``/healthz`` is liveness (the loop iterated within
the liveness timeout) and ``/readyz`` readiness (partitions assigned, model loaded, not restoring).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from casewatch.telemetry.health import Health, ProbeServer
from casewatch.telemetry.histograms import BatchHistogram

PREFIX: Final = "casewatch"
TRIGGERS: Final = ("close", "event", "timeout", "evicted", "request")
REBALANCE_KINDS: Final = ("assign", "revoke", "lost")
LATENCY_CLOCKS: Final = ("event_time", "ingest_time")

_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Event-time latency spans sub-second streaming to replays of logs that are days old.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
_SCORE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


class Telemetry:
    """The daemon's metrics, its health state and the HTTP server that exposes both."""

    def __init__(
        self,
        *,
        liveness_timeout_seconds: float = 30.0,
        invalid_reasons: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.health = Health(liveness_timeout_seconds)
        self.heartbeat = self.health.heartbeat
        self.set_assigned = self.health.set_assigned
        self.set_model_loaded = self.health.set_model_loaded
        self.set_restoring = self.health.set_restoring
        self._http = ProbeServer(self.registry, self.health)
        self._last_commit = time.time()
        r = self.registry

        self.up = Gauge(f"{PREFIX}_up", "1 while the daemon runs.", registry=r)
        self.up.set(1)
        self.events_consumed = Counter(
            f"{PREFIX}_events_consumed", "Input messages consumed.", registry=r
        )
        self.invalid_events = Counter(
            f"{PREFIX}_invalid_events",
            "Input messages that could not be decoded, by reason.",
            ["reason"],
            registry=r,
        )
        self.invalid_by_reason = {
            reason: self.invalid_events.labels(reason) for reason in invalid_reasons
        }
        self.evaluations = Counter(
            f"{PREFIX}_evaluations",
            "Evaluations published, by trigger and verdict.",
            ["trigger", "anomalous"],
            registry=r,
        )
        self.evaluations_by = {
            (trigger, anomalous): self.evaluations.labels(trigger, str(anomalous).lower())
            for trigger in TRIGGERS
            for anomalous in (False, True)
        }
        self.open_cases = Gauge(f"{PREFIX}_open_cases", "Cases held in memory.", registry=r)
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Messages per consumed batch.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Time to process one batch, consume to publish.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.scoring_duration = Histogram(
            f"{PREFIX}_scoring_duration_seconds",
            "Time of one scorer run over the due cases of a batch.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.event_to_evaluation_latency = BatchHistogram(
            f"{PREFIX}_event_to_evaluation_latency_seconds",
            "From a case's last event to its evaluation; event_time uses the event timestamp, "
            "ingest_time the moment the message was consumed.",
            _LATENCY_BUCKETS,
            label="clock",
            label_values=LATENCY_CLOCKS,
            registry=r,
        )
        self.latency_event_time = self.event_to_evaluation_latency.labels("event_time")
        self.latency_ingest_time = self.event_to_evaluation_latency.labels("ingest_time")
        self.trace_score = BatchHistogram(
            f"{PREFIX}_trace_score",
            "Trace scores of published evaluations.",
            _SCORE_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag",
            "Messages between the high watermark and the consumed position, by partition.",
            ["partition"],
            registry=r,
        )
        self.last_commit_timestamp = Gauge(
            f"{PREFIX}_last_commit_timestamp_seconds",
            "Unix time of the last successful checkpoint.",
            registry=r,
        )
        self.last_commit_timestamp.set(self._last_commit)
        self.seconds_since_last_commit = Gauge(
            f"{PREFIX}_seconds_since_last_commit",
            "Seconds since the last successful checkpoint (since start before the first one).",
            registry=r,
        )
        self.seconds_since_last_commit.set_function(lambda: time.time() - self._last_commit)
        self.model = Info(f"{PREFIX}_model", "The scorer in use.", registry=r)
        self.rebalances = Counter(
            f"{PREFIX}_rebalances", "Partition rebalance events, by kind.", ["kind"], registry=r
        )
        self.rebalances_by_kind = {kind: self.rebalances.labels(kind) for kind in REBALANCE_KINDS}
        self.assigned_partitions = Gauge(
            f"{PREFIX}_assigned_partitions", "Input partitions assigned.", registry=r
        )
        self.unknown_activities = Counter(
            f"{PREFIX}_unknown_activities",
            "Events whose activity the model does not know.",
            registry=r,
        )
        self.dlq_records = Counter(
            f"{PREFIX}_dlq_records", "Records sent to the dead-letter topic.", registry=r
        )
        self.oversized_records = Counter(
            f"{PREFIX}_oversized_records",
            "Output records too large for the broker, replaced by a truncated dead-letter record.",
            registry=r,
        )
        self.scoring_failures = Counter(
            f"{PREFIX}_scoring_failures",
            "Case evaluations the model failed on, sent to the dead-letter topic instead.",
            registry=r,
        )
        self.unkeyed_events = Counter(
            f"{PREFIX}_unkeyed_events",
            "Input events without a Kafka key: their cases may be split across partitions.",
            registry=r,
        )
        self.delivery_errors = Counter(
            f"{PREFIX}_delivery_errors", "Output records the broker failed to take.", registry=r
        )
        self.commits = Counter(f"{PREFIX}_commits", "Successful offset commits.", registry=r)
        self.producer_queue_length = Gauge(
            f"{PREFIX}_producer_queue_length", "Output records awaiting delivery.", registry=r
        )
        self.paused = Gauge(
            f"{PREFIX}_paused", "1 while consumption is paused for back-pressure.", registry=r
        )
        self.restoring = Gauge(
            f"{PREFIX}_restoring", "1 while case state is restored from the changelog.", registry=r
        )
        self.restore_duration = Histogram(
            f"{PREFIX}_restore_duration_seconds",
            "Time to restore one partition's cases from the changelog.",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.records_restored = Counter(
            f"{PREFIX}_records_restored", "Changelog records read while restoring.", registry=r
        )
        self.changelog_records = Counter(
            f"{PREFIX}_changelog_records",
            "State records written to the changelog (tombstones included).",
            registry=r,
        )
        self.offsets_out_of_range = Counter(
            f"{PREFIX}_offsets_out_of_range",
            "Assigned partitions whose committed offset was no longer in the log.",
            registry=r,
        )
        self.model_load_failures = Counter(
            f"{PREFIX}_model_load_failures", "Models that failed to load or validate.", registry=r
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

    def set_model(self, name: str, version: str, sha256: str) -> None:
        self.model.info({"name": name, "version": version, "sha256": sha256})

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP server thread; returns the bound address (port 0 picks a free port)."""
        return self._http.serve(host, port)

    def close(self) -> None:
        """Stop the HTTP server; safe to call more than once."""
        self._http.close()
