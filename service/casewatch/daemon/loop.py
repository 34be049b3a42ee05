"""The processing loop: consume -> decode -> score -> publish -> checkpoint, on one thread.

The parts are built from the settings in ``casewatch.daemon.build``; the loop only runs them.
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
import time
from typing import Any

import confluent_kafka
import msgspec

from casewatch.daemon.dead_letter import scoring_failure
from casewatch.daemon.parts import AlertEncoder, EvaluationEncoder, LoopOptions, Parts
from casewatch.errors import DeliveryFailure
from casewatch.events import StreamingEvent
from casewatch.kafka import clients
from casewatch.kafka.errors import is_fatal, kafka_errors, to_casewatch
from casewatch.scoring.alerts import CaseAlert
from casewatch.scoring.isolation import ScoringFailure
from casewatch.scoring.scored import ScoredBatch
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.verdicts import Verdicts

log = get_logger(__name__)

_CHECKPOINT_FLUSH_SECONDS = 5.0
# How long a quiet loop waits for input while a restore or a checkpoint has its next step to
# take: each wake-up costs little, and the step then waits this long rather than a batch wait.
_STEP_WAIT = 0.005


class Daemon:
    """One consumer, one producer, one evaluator; ``run`` returns when a stop is requested."""

    def __init__(self, options: LoopOptions, parts: Parts) -> None:
        self.options = options
        self.evaluator = parts.evaluator
        self.telemetry = parts.telemetry
        self.metrics = parts.metrics
        self.outputs = parts.outputs
        self.checkpoint = parts.checkpoint
        self.restorer = parts.restorer
        self.rebalance = parts.rebalance
        self.intake = parts.intake
        self.reloader = parts.reloader
        self.back_pressure = parts.back_pressure
        self._stop = parts.stop
        self._prepare_topics = parts.prepare_topics
        # None: JSON written straight from the scored columns (``ScoredBatch.encoded``).
        self.encoder: EvaluationEncoder | None = parts.encoder
        self.alert_encoder: AlertEncoder = parts.alert_encoder or msgspec.json.Encoder()

    def request_stop(self) -> None:
        self._stop.set()

    def request_model_reload(self) -> None:
        self.reloader.request()

    def run(self) -> None:
        """Process until ``request_stop``; raises CasewatchError on a fatal failure."""
        o = self.options
        partitions = self._prepare_topics()
        if partitions is None:
            log.info("daemon_stopped", commits=0)
            return
        if self.outputs.transactional:
            self.outputs.start_transactions(o.shutdown_timeout)
        with kafka_errors("cannot start the consumer"):
            consumer: Any = clients.consumer(o.consumer_config)
            consumer.subscribe(
                [o.input_topic],
                on_assign=self.rebalance.on_assign,
                on_revoke=self.rebalance.on_revoke,
                on_lost=self.rebalance.on_lost,
            )
        log.info(
            "daemon_started",
            input_topic=o.input_topic,
            output_topic=o.output_topic,
            changelog_topic=o.changelog_topic,
            alert_topic=o.alert_topic,
            partitions=partitions,
            processing_guarantee="exactly_once" if o.exactly_once else "at_least_once",
        )
        try:
            with kafka_errors("kafka"):
                self._loop(consumer)
                self._shutdown(consumer)
        except BaseException:
            self._abandon(consumer)
            raise

    def _loop(self, consumer: Any) -> None:
        telemetry, rebalance, stopping = self.telemetry, self.rebalance, self._stop
        batch_size, wait = self.options.max_batch_size, self.options.max_batch_wait
        while not stopping():
            telemetry.heartbeat()
            messages = self._take(consumer, batch_size, self._input_wait(wait))
            rebalance.raise_failure()
            if self.restorer.restoring:
                self._restore_step(consumer)
            started = time.perf_counter()
            consumed_at = time.time()
            events, times, consumed = self.intake.take(messages)
            scored = self._score(events, times)
            self._publish(scored, consumed_at)
            if consumed:
                self.metrics.batch(consumed, started)
            self.back_pressure.relieve(consumer)
            self._advance_checkpoint(consumer)
            self.reloader.maybe_reload()

    def _input_wait(self, longest: float) -> float:
        """How long a quiet stream may hold the loop: not past the checkpoint's next step, and
        hardly at all while a restore, whose steps run between batches, is under way."""
        if self.restorer.restoring:
            return _STEP_WAIT
        return min(longest, max(_STEP_WAIT, self.checkpoint.next_step_in()))

    @staticmethod
    def _take(consumer: Any, batch_size: int, wait: float) -> list[Any]:
        """What is already fetched, without waiting; when nothing is, wait for the first message.

        ``consume`` returns only when the batch is full or its timeout ends, so waiting for a
        full batch would hold the first event of a quiet stream for the whole wait. Waking on
        one message and then taking what else has arrived keeps batches small when the stream
        is slow (latency) and full when it is fast (throughput).
        """
        messages: list[Any] = consumer.consume(num_messages=batch_size, timeout=0)
        if messages or batch_size == 1:
            return messages or consumer.consume(num_messages=1, timeout=wait)
        messages = consumer.consume(num_messages=1, timeout=wait)
        if messages:
            messages.extend(consumer.consume(num_messages=batch_size - 1, timeout=0))
        return messages

    def _score(self, events: list[StreamingEvent], times: list[float]) -> list[ScoredBatch]:
        started = time.perf_counter()
        topic = self.options.input_topic
        evaluator = self.evaluator
        evaluated = evaluator.on_events_batch(events, source_topic=topic, times=times)
        expired = evaluator.expire_batch(source_topic=topic)
        scored = [batch for batch in (evaluated, expired) if batch is not None]
        if scored:
            self.telemetry.scoring_duration.observe(time.perf_counter() - started)
        if evaluator.scoring_failures:
            self._dead_letter_failures(evaluator.scoring_failures)
        return scored

    def _publish(self, scored: list[ScoredBatch], consumed_at: float) -> None:
        topic, encoder = self.options.output_topic, self.encoder
        for batch in scored:
            if encoder is None:
                values = batch.encoded()
            else:  # a format that encodes record objects (Avro)
                values = [encoder.encode(evaluation) for evaluation in batch.evaluations()]
            self.outputs.produce_many(topic, batch.keys(), values)
        self.metrics.evaluations(Verdicts.concat([b.verdicts() for b in scored]), consumed_at)
        if self.evaluator.case_alerts:
            self._publish_alerts(self.evaluator.case_alerts)

    def _publish_alerts(self, alerts: list[CaseAlert]) -> None:
        """After the evaluations that raised them: same transaction, or flushed before the same
        checkpoint commits (``casewatch.scoring.alerts``)."""
        topic, produce, encode = (
            self.options.alert_topic,
            self.outputs.produce,
            self.alert_encoder.encode,
        )
        if topic is not None:
            for alert in alerts:
                produce(topic, alert.case_id.encode(), encode(alert))
            self.metrics.alerts(alerts)
        alerts.clear()

    def _dead_letter_failures(self, failures: list[ScoringFailure]) -> None:
        """Cases the model failed on: an error record each instead of an evaluation."""
        for failure in failures:
            self.outputs.produce(self.options.dead_letter_topic, *scoring_failure(failure))
        self.metrics.scoring_failures(failures)
        failures.clear()

    def _restore_step(self, consumer: Any) -> None:
        restorer = self.restorer
        finished = restorer.step()
        if finished:
            self.back_pressure.resume_restored(consumer, finished)
            log.info(
                "partitions_restored",
                partitions=sorted(finished),
                seconds=round(max(finished.values()), 3),
                open_cases=self.evaluator.open_case_count,
            )
        self.metrics.restore(restorer.restoring, restorer.records, finished)

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
            raise to_casewatch(exc, "commit failed") from exc
        # A commit rejected during a rebalance is retried at the next checkpoint; the worst
        # case is that some input is read again, never that some is skipped.
        log.warning("commit_rejected", error=str(exc))

    def _observe_checkpoint(self, consumer: Any) -> None:
        checkpoint = self.checkpoint
        self.metrics.checkpoint(checkpoint.changelog_records, self.outputs.pending)
        self.metrics.lag(consumer, self.options.input_topic, self.rebalance.assigned)

    def _shutdown(self, consumer: Any) -> None:
        """Deliver what is in flight, commit it, leave the group."""
        timeout = self.options.shutdown_timeout
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
