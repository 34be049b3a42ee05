"""Consumer-group rebalance callbacks, kept small: they hand over to the restore planner, the
checkpoint and the evaluator.

confluent-kafka runs them inside ``consume()`` on the loop's thread, so the loop's state is never
touched concurrently. A failure inside a callback is recorded and raised by the loop afterwards,
because exceptions must not escape into librdkafka.

Assignment: new partitions get their start offset checked against the log (a committed offset
that retention deleted is handled by the configured policy), are assigned paused, and stay
paused until their cases are restored from the changelog. Revocation: a bounded checkpoint
(outputs, changelog, offsets), then their cases are dropped; the new owner restores them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import confluent_kafka

from casewatch.daemon.checkpoint import Checkpoint
from casewatch.errors import KafkaFailure
from casewatch.kafka.errors import is_fatal, to_casewatch
from casewatch.kafka.producer import OutputProducer
from casewatch.state.restore import Restorer
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.loop_metrics import LoopMetrics

log = get_logger(__name__)
_METADATA_TIMEOUT = 10.0


class _DropsPartitions(Protocol):
    def drop_partitions(self, partitions: set[int]) -> int: ...


class Rebalance:
    """on_assign / on_revoke / on_lost for one input topic."""

    def __init__(
        self,
        *,
        checkpoint: Checkpoint,
        outputs: OutputProducer,
        evaluator: _DropsPartitions,
        restorer: Restorer,
        out_of_range: str,
        cooperative: bool,
        flush_timeout: float,
        counted: Callable[[str, set[int]], None],
    ) -> None:
        self._checkpoint = checkpoint
        self._outputs = outputs
        self._evaluator = evaluator
        self._restorer = restorer
        self._out_of_range = out_of_range
        self._cooperative = cooperative
        self._flush_timeout = flush_timeout
        self._counted = counted
        self.assigned: set[int] = set()
        self.failure: BaseException | None = None
        self.out_of_range_count = 0
        # Cleared after a failure: outputs of the last batch may be missing, so its input
        # must be read again by whoever takes the partitions over.
        self.commit_on_revoke = True

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        try:
            self._start_offsets(consumer, partitions)
        except Exception as exc:  # raised by the loop once consume() returns
            self.failure = self.failure or exc
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        consumer.pause(partitions)
        numbers = {tp.partition for tp in partitions}
        self._restorer.begin(sorted(numbers))
        self.assigned.update(numbers)
        self._counted("assign", numbers)

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {tp.partition for tp in partitions}
        self._restorer.cancel(revoked)
        if self.commit_on_revoke:
            try:
                self._checkpoint.commit(consumer, self._outputs, flush_timeout=self._flush_timeout)
            except confluent_kafka.KafkaException as exc:
                if is_fatal(exc):
                    self.failure = self.failure or to_casewatch(exc, "commit on revoke failed")
                else:
                    # The group moved on before the commit landed (a rebalance in progress):
                    # the new owner re-reads from the last commit and skips what the
                    # changelog already reflects, so nothing is lost.
                    log.warning("commit_on_revoke_rejected", error=str(exc))
            except Exception as exc:  # raised by the loop once consume() returns
                self.failure = self.failure or exc
        self._release(revoked, "revoke")

    def on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # The group has moved on: committing now would be rejected, so only drop the state.
        lost = {tp.partition for tp in partitions}
        self._restorer.cancel(lost)
        self._release(lost, "lost")

    def raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _release(self, partitions: set[int], kind: str) -> None:
        self._evaluator.drop_partitions(partitions)
        self._checkpoint.forget(partitions)
        self.assigned -= partitions
        self._counted(kind, partitions)

    def _start_offsets(self, consumer: Any, partitions: list[Any]) -> None:
        """Apply the out-of-range policy to committed offsets retention has deleted."""
        committed = consumer.committed(partitions, timeout=_METADATA_TIMEOUT)
        for tp, stored in zip(partitions, committed, strict=True):
            if stored.offset < 0:
                continue  # nothing committed: auto.offset.reset decides
            low, high = consumer.get_watermark_offsets(tp, timeout=_METADATA_TIMEOUT)
            if low <= stored.offset <= high:
                continue
            self.out_of_range_count += 1
            log.warning(
                "committed_offset_out_of_range",
                partition=tp.partition, committed=stored.offset, low=low, high=high,
                policy=self._out_of_range,
            )  # fmt: skip
            if self._out_of_range == "fail":
                raise KafkaFailure(
                    f"partition {tp.partition}: committed offset {stored.offset} is outside "
                    f"the log [{low}, {high}] and offset_out_of_range=fail"
                )
            tp.offset = low if self._out_of_range == "earliest" else high


def report(
    metrics: LoopMetrics, rebalance: Rebalance, restorer: Restorer, kind: str, partitions: set[int]
) -> None:
    """What a rebalance changed, for the metrics and the log (``Rebalance``'s ``counted``)."""
    metrics.rebalance(kind, partitions, rebalance.assigned, rebalance.out_of_range_count)
    metrics.restore(restorer.restoring, restorer.records, {})
    event = {"assign": "partitions_assigned", "revoke": "partitions_revoked"}.get(kind)
    log.info(event or f"partitions_{kind}", partitions=sorted(partitions))
