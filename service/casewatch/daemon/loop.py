"""The processing loop: consume -> decode -> score -> publish -> checkpoint, on one thread.

Everything runs on the thread that calls ``Daemon.run``: librdkafka's delivery reports and
rebalance callbacks are served inside ``poll``/``flush``/``consume`` on that thread too, so no
state is shared. Other threads (a signal handler, a test) only call ``request_stop``.

Open cases survive restarts and rebalances through the state changelog: the checkpoint writes
the state of changed cases before it commits input offsets (``casewatch.daemon.checkpoint``),
and newly assigned partitions stay paused until their cases are restored
(``casewatch.state.restore``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import confluent_kafka
import msgspec

from casewatch.daemon.checkpoint import Checkpoint
from casewatch.daemon.dead_letter import scoring_failure
from casewatch.daemon.decode import EventDecoder, FieldNames
from casewatch.daemon.intake import Intake
from casewatch.daemon.model_reload import ModelReloader
from casewatch.daemon.rebalance import Rebalance
from casewatch.daemon.startup import prepare_topics
from casewatch.errors import DeliveryFailure, KafkaFailure
from casewatch.events import ModelIdentity, StreamingEvaluation, StreamingEvent
from casewatch.kafka.config import is_fatal, restore_consumer_config
from casewatch.kafka.producer import OutputProducer
from casewatch.scoring.isolation import ScoringFailure
from casewatch.scoring.scorer import Scorer
from casewatch.settings import Settings
from casewatch.state.changelog import write_changes
from casewatch.state.changes import StateChanges
from casewatch.state.restore import Restorer
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry

log = get_logger(__name__)

_CHECKPOINT_FLUSH_SECONDS = 5.0


class Evaluator(Protocol):
    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def unknown_activity_events(self) -> int: ...

    @property
    def open_case_count(self) -> int: ...

    @property
    def scoring_failures(self) -> list[ScoringFailure]: ...

    def on_events(
        self,
        events: Sequence[StreamingEvent],
        *,
        source_topic: str | None = None,
        times: Sequence[float] | None = None,
    ) -> list[StreamingEvaluation]: ...

    def expire(
        self, now: float | None = None, *, source_topic: str | None = None
    ) -> list[StreamingEvaluation]: ...

    def drop_partitions(self, partitions: set[int]) -> int: ...

    def take_state_changes(self) -> StateChanges: ...

    def restore_case(self, case_id: str, state: bytes) -> None: ...

    def forget_case(self, case_id: str) -> None: ...

    def last_offset(self, case_id: str) -> int | None: ...

    def swap_scorer(self, scorer: Scorer) -> bool: ...


class Daemon:
    """One consumer, one producer, one evaluator; ``run`` returns when a stop is requested."""

    def __init__(self, settings: Settings, evaluator: Evaluator, telemetry: Telemetry) -> None:
        self.settings = settings
        self.evaluator = evaluator
        self.telemetry = telemetry
        self.decoder = EventDecoder(
            FieldNames.from_settings(settings), max_message_bytes=settings.max_message_bytes
        )
        self.encoder = msgspec.json.Encoder()
        kafka_logger = {"logger": logging.getLogger("casewatch.librdkafka")}
        self._consumer_config = {**settings.consumer_config(), **kafka_logger}
        self.outputs = OutputProducer(
            {**settings.producer_config(), **kafka_logger},
            max_pending=settings.max_pending_outputs,
            dead_letter_topic=settings.dlq_topic,
        )
        self.checkpoint = Checkpoint(
            settings.input_topic,
            interval=settings.commit_interval_seconds,
            write_changelog=lambda: write_changes(settings.changelog, evaluator, self.outputs),
        )
        self.restorer = Restorer(
            settings.changelog,
            {**restore_consumer_config(settings), **kafka_logger},
            evaluator,
            batch_size=settings.restore_batch_size,
        )
        strategy = str(self._consumer_config.get("partition.assignment.strategy", ""))
        self.rebalance = Rebalance(
            checkpoint=self.checkpoint,
            outputs=self.outputs,
            evaluator=evaluator,
            restorer=self.restorer,
            out_of_range=settings.offset_out_of_range,
            cooperative="cooperative" in strategy,
            flush_timeout=settings.shutdown_timeout_seconds,
            counted=self._count_rebalance,
        )
        self.metrics = LoopMetrics(telemetry, evaluator, self.outputs)
        self.intake = Intake(
            self.decoder,
            outputs=self.outputs,
            dead_letter_topic=settings.dlq_topic,
            checkpoint=self.checkpoint,
            restorer=self.restorer,
            metrics=self.metrics,
            on_consume_error=self._on_consume_error,
        )
        self.reloader = ModelReloader(settings, evaluator, telemetry)
        self._stopping = False

    def request_stop(self) -> None:
        self._stopping = True

    def request_model_reload(self) -> None:
        self.reloader.request()

    def run(self) -> None:
        """Process until ``request_stop``; raises CasewatchError on a fatal failure."""
        s = self.settings
        partitions = prepare_topics(
            s, stopping=lambda: self._stopping, heartbeat=self.telemetry.heartbeat
        )
        if partitions is None:
            log.info("daemon_stopped", commits=0)
            return
        try:
            if self.outputs.transactional:
                self.outputs.start_transactions(s.shutdown_timeout_seconds)
            consumer: Any = confluent_kafka.Consumer(self._consumer_config)
            consumer.subscribe(
                [s.input_topic],
                on_assign=self.rebalance.on_assign,
                on_revoke=self.rebalance.on_revoke,
                on_lost=self.rebalance.on_lost,
            )
        except confluent_kafka.KafkaException as exc:
            raise KafkaFailure(f"cannot start the consumer: {exc}") from None
        log.info(
            "daemon_started",
            input_topic=s.input_topic,
            output_topic=s.output_topic,
            changelog_topic=s.changelog,
            partitions=partitions,
            processing_guarantee=s.processing_guarantee,
        )
        try:
            self._loop(consumer)
            self._shutdown(consumer)
        except confluent_kafka.KafkaException as exc:
            self._abandon(consumer)
            raise KafkaFailure(f"kafka: {exc}") from None
        except BaseException:
            self._abandon(consumer)
            raise

    def _loop(self, consumer: Any) -> None:
        s, telemetry, rebalance = self.settings, self.telemetry, self.rebalance
        batch_size, wait = s.max_batch_size, s.max_batch_wait_ms / 1000
        while not self._stopping:
            telemetry.heartbeat()
            # Take what is already fetched without waiting; wait only when nothing is there.
            messages = consumer.consume(num_messages=batch_size, timeout=0) or consumer.consume(
                num_messages=batch_size, timeout=wait
            )
            rebalance.raise_failure()
            if self.restorer.restoring:
                self._restore_step(consumer)
            started = time.perf_counter()
            consumed_at = time.time()
            events, times, consumed = self.intake.take(messages)
            evaluations = self._score(events, times)
            self._publish(evaluations, consumed_at)
            if consumed:
                self.metrics.batch(consumed, started)
            self._relieve_backpressure(consumer)
            self._advance_checkpoint(consumer)
            self.reloader.maybe_reload()

    def _score(self, events: list[StreamingEvent], times: list[float]) -> list[StreamingEvaluation]:
        started = time.perf_counter()
        topic = self.settings.input_topic
        evaluations = self.evaluator.on_events(events, source_topic=topic, times=times)
        expired = self.evaluator.expire(source_topic=topic)
        if evaluations or expired:
            self.telemetry.scoring_duration.observe(time.perf_counter() - started)
        if self.evaluator.scoring_failures:
            self._dead_letter_failures(self.evaluator.scoring_failures)
        return evaluations + expired if expired else evaluations

    def _publish(self, evaluations: list[StreamingEvaluation], consumed_at: float) -> None:
        topic, produce, encode = (
            self.settings.output_topic,
            self.outputs.produce,
            self.encoder.encode,
        )
        for evaluation in evaluations:
            produce(topic, evaluation.case_id.encode(), encode(evaluation))
        self.metrics.evaluations(evaluations, consumed_at)

    def _dead_letter_failures(self, failures: list[ScoringFailure]) -> None:
        """Cases the model failed on: an error record each instead of an evaluation."""
        for failure in failures:
            self.outputs.produce(self.settings.dlq_topic, *scoring_failure(failure))
        self.metrics.scoring_failures(failures)
        failures.clear()

    def _on_consume_error(self, error: Any) -> None:
        if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaFailure(f"consumer failed: {error.str()}")
        log.warning("consumer_error", error=error.str())

    def _restore_step(self, consumer: Any) -> None:
        restorer = self.restorer
        finished = restorer.step()
        if finished:
            topic = self.settings.input_topic
            consumer.resume([confluent_kafka.TopicPartition(topic, p) for p in finished])
            log.info(
                "partitions_restored",
                partitions=sorted(finished),
                seconds=round(max(finished.values()), 3),
                open_cases=self.evaluator.open_case_count,
            )
        self.metrics.restore(restorer.restoring, restorer.records, finished)

    def _relieve_backpressure(self, consumer: Any) -> None:
        outputs = self.outputs
        outputs.poll(0)
        if not outputs.over_limit():
            return
        assignment = consumer.assignment()
        consumer.pause(assignment)
        self.telemetry.paused.set(1)
        try:
            outputs.drain_below(outputs.max_pending // 2)
        finally:
            consumer.resume(assignment)
            self.telemetry.paused.set(0)

    def _advance_checkpoint(self, consumer: Any) -> None:
        if self.outputs.transactional:
            # A transaction commits in one blocking call anyway.
            if self.checkpoint.expired():
                self._checkpoint(consumer, _CHECKPOINT_FLUSH_SECONDS)
            return
        try:
            completed = self.checkpoint.advance(consumer, self.outputs)
        except confluent_kafka.KafkaException as exc:
            self._commit_rejected(exc)
            return
        if completed:
            self._observe_checkpoint(consumer)

    def _checkpoint(self, consumer: Any, flush_timeout: float) -> bool:
        """The blocking checkpoint, for revoke, shutdown and transactions."""
        try:
            done = self.checkpoint.commit(consumer, self.outputs, flush_timeout=flush_timeout)
        except confluent_kafka.KafkaException as exc:
            self._commit_rejected(exc)
            return False
        if done:
            self._observe_checkpoint(consumer)
        return done

    def _commit_rejected(self, exc: confluent_kafka.KafkaException) -> None:
        if is_fatal(exc):
            raise exc
        # A commit rejected during a rebalance is retried at the next checkpoint; the worst
        # case is that some input is read again, never that some is skipped.
        log.warning("commit_rejected", error=str(exc))

    def _observe_checkpoint(self, consumer: Any) -> None:
        checkpoint = self.checkpoint
        self.metrics.checkpoint(checkpoint.changelog_records, self.outputs.pending)
        self.metrics.lag(consumer, self.settings.input_topic, self.rebalance.assigned)

    def _count_rebalance(self, kind: str, partitions: set[int]) -> None:
        rebalance = self.rebalance
        self.metrics.rebalance(kind, partitions, rebalance.assigned, rebalance.out_of_range_count)
        self.metrics.restore(self.restorer.restoring, self.restorer.records, {})
        event = {"assign": "partitions_assigned", "revoke": "partitions_revoked"}.get(kind)
        log.info(event or f"partitions_{kind}", partitions=sorted(partitions))

    def _shutdown(self, consumer: Any) -> None:
        """Deliver what is in flight, commit it, leave the group."""
        timeout = self.settings.shutdown_timeout_seconds
        delivered = self._checkpoint(consumer, timeout)
        pending = self.outputs.pending
        if not delivered:
            log.warning("shutdown_undelivered", pending=pending)
            # The time is spent: leaving the group must not wait for another flush.
            self.rebalance.commit_on_revoke = False
        consumer.close()
        self.restorer.close()
        self.rebalance.raise_failure()
        if not delivered:
            # A supervisor must see that this stop was not clean. Nothing is lost: neither input
            # offsets nor state were committed past those outputs, so the next run makes them again.
            raise DeliveryFailure(
                f"stopped with {pending} outputs undelivered after {timeout:g} s; nothing was "
                "committed past them, so the next start produces them again"
            )
        log.info("daemon_stopped", commits=self.checkpoint.commits)

    def _abandon(self, consumer: Any) -> None:
        # After a failure nothing more is committed: the next run re-reads from the last commit.
        self.rebalance.commit_on_revoke = False
        with contextlib.suppress(Exception):
            consumer.close()
        with contextlib.suppress(Exception):
            self.restorer.close()
