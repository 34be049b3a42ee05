"""What the processing loop reports to Prometheus, in one place.

Running totals kept by the evaluator, the checkpoint and the output producer become increments
here, so the loop's hot path only hands over numbers it already has.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

import confluent_kafka
import numpy as np

from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.metrics import Telemetry
from casewatch.telemetry.verdicts import Verdicts

if TYPE_CHECKING:  # telemetry sits below scoring: the type only, not the module
    from casewatch.scoring.alerts import CaseAlert
    from casewatch.scoring.isolation import ScoringFailure

log = get_logger(__name__)
_LOGGED_CHARS = 200
# Totals other parts keep and the loop hands over; the last value seen of each is remembered here.
_RUNNING_TOTALS = (
    "unknown",
    "changelog",
    "out_of_range",
    "restored",
    "oversized",
    "rerouted",
    "delivery_errors",
)


class _Counts(Protocol):
    @property
    def open_case_count(self) -> int: ...

    @property
    def unknown_activity_events(self) -> int: ...


class _Outputs(Protocol):
    @property
    def failed(self) -> int: ...

    @property
    def oversized(self) -> int: ...

    @property
    def rerouted(self) -> int: ...


def verdicts_with(verdicts: Counter[tuple[str, bool]], trigger: str) -> int:
    return verdicts[trigger, False] + verdicts[trigger, True]


class LoopMetrics:
    def __init__(self, telemetry: Telemetry, evaluator: _Counts, outputs: _Outputs) -> None:
        self.telemetry = telemetry
        self._evaluator = evaluator
        self._outputs = outputs
        self._unkeyed_partitions: set[int] = set()
        self._seen = dict.fromkeys(_RUNNING_TOTALS, 0)

    def _increment(self, name: str, total: int, counter: Any) -> None:
        if total > self._seen[name]:
            counter.inc(total - self._seen[name])
            self._seen[name] = total

    def batch(self, size: int, started: float) -> None:
        telemetry = self.telemetry
        telemetry.events_consumed.inc(size)
        telemetry.batch_size.observe(size)
        telemetry.batch_duration.observe(time.perf_counter() - started)
        telemetry.open_cases.set(self._evaluator.open_case_count)
        self._increment(
            "unknown", self._evaluator.unknown_activity_events, telemetry.unknown_activities
        )
        self._count_outputs()

    def _count_outputs(self) -> None:
        """Delivery failures and oversized records, as the producer counts them."""
        outputs, telemetry = self._outputs, self.telemetry
        self._increment("delivery_errors", outputs.failed, telemetry.delivery_errors)
        if outputs.oversized > self._seen["oversized"]:
            self._increment("oversized", outputs.oversized, telemetry.oversized_records)
            self._increment("rerouted", outputs.rerouted, telemetry.dlq_records)

    def evaluations(self, verdicts: Verdicts | None, consumed_at: float) -> None:
        """Counted and bucketed once per batch, not once per evaluation."""
        telemetry = self.telemetry
        telemetry.drift.observe(verdicts)  # also the events of batches that close no case
        if verdicts is None:
            return
        now = time.time()
        counts: Counter[tuple[str, bool]] = Counter(
            zip(verdicts.triggers, verdicts.anomalous.tolist(), strict=True)
        )
        for (trigger, anomalous), count in counts.items():
            telemetry.count_evaluation(trigger, anomalous, count)
        telemetry.model_series.observe(verdicts)
        telemetry.trace_score.observe_many(verdicts.trace_scores)
        last_events = verdicts.last_event_at[~np.isnan(verdicts.last_event_at)]
        telemetry.latency_event_time.observe_many(np.maximum(now - last_events, 0.0))
        ingested = len(verdicts) - verdicts_with(counts, "timeout")
        telemetry.latency_ingest_time.observe_many(np.full(ingested, now - consumed_at))

    def invalid(self, reason: str) -> None:
        self.telemetry.count_invalid(reason)
        self.telemetry.dlq_records.inc()

    def unkeyed(self, partitions: list[int]) -> None:
        """Events without a key, by partition: one warning per partition, then the metric."""
        self.telemetry.unkeyed_events.inc(len(partitions))
        for partition in set(partitions) - self._unkeyed_partitions:
            self._unkeyed_partitions.add(partition)
            log.warning(
                "unkeyed_input",
                partition=partition,
                hint="produce input keyed by case id: unkeyed events of one case are spread "
                "over partitions and may be evaluated out of order or split",
            )

    def scoring_failures(self, failures: list[ScoringFailure]) -> None:
        telemetry = self.telemetry
        telemetry.scoring_failures.inc(len(failures))
        telemetry.dlq_records.inc(len(failures))
        first = failures[0]
        log.warning(
            "scoring_failed",
            cases=len(failures),
            case_id=first.case_id[:_LOGGED_CHARS],
            model_version=first.model.version,
            error=first.error,
        )

    def alerts(self, alerts: list[CaseAlert]) -> None:
        for kind, count in Counter(alert.kind for alert in alerts).items():
            self.telemetry.alerts_by_kind[kind].inc(count)

    def checkpoint(self, changelog_records: int, pending_outputs: int) -> None:
        """A checkpoint completed (with or without new offsets to commit)."""
        telemetry = self.telemetry
        telemetry.mark_commit()
        self._increment("changelog", changelog_records, telemetry.changelog_records)
        self._count_outputs()
        telemetry.producer_queue_length.set(pending_outputs)
        telemetry.open_cases.set(self._evaluator.open_case_count)

    def lag(self, consumer: Any, topic: str, assigned: set[int]) -> None:
        """Consumer lag from cached watermarks; called on the checkpoint interval only."""
        telemetry = self.telemetry
        telemetry.assigned_partitions.set(len(assigned))
        if not assigned:
            return
        wanted = [confluent_kafka.TopicPartition(topic, p) for p in sorted(assigned)]
        for tp in consumer.position(wanted):
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0 and tp.offset >= 0:
                telemetry.set_consumer_lag(tp.partition, max(0, high - tp.offset))

    def rebalance(
        self, kind: str, changed: set[int], assigned: set[int], out_of_range: int
    ) -> None:
        telemetry = self.telemetry
        telemetry.rebalances_by_kind[kind].inc()
        telemetry.assigned_partitions.set(len(assigned))
        telemetry.set_assigned(bool(assigned))
        if kind != "assign":
            telemetry.forget_partitions(changed)
        self._increment("out_of_range", out_of_range, telemetry.offsets_out_of_range)

    def restore(self, restoring: bool, records: int, finished: dict[int, float]) -> None:
        telemetry = self.telemetry
        self._increment("restored", records, telemetry.records_restored)
        for seconds in finished.values():
            telemetry.restore_duration.observe(seconds)
        telemetry.set_restoring(restoring)
        telemetry.restoring.set(int(restoring))
