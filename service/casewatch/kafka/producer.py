"""The daemon's producer: every output record is tracked until its delivery report arrives.

Delivery callbacks run inside ``poll``/``flush`` on the loop's thread. They never raise: they count
the report and keep the first failure, which ``flush`` raises as DeliveryFailure so that no input
offset is committed past an output that was lost.

The one failure a record can carry in itself, its size, is not fatal: a record larger than
``message.max.bytes``, or refused by the broker as too large, is replaced by a truncated
dead-letter record (``casewatch.kafka.oversize``) counted in ``oversized``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import confluent_kafka

from casewatch.errors import DeliveryFailure
from casewatch.kafka import clients
from casewatch.kafka.errors import error_code, kafka_errors, reason, to_casewatch
from casewatch.kafka.generations import Generation, Generations
from casewatch.kafka.oversize import (
    DEFAULT_MAX_BYTES,
    RECORD_OVERHEAD,
    SMALLEST_LIMIT,
    Headers,
    record_size,
    replace_oversized,
)

_TOO_LARGE = frozenset(
    {
        confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE,
        confluent_kafka.KafkaError.RECORD_LIST_TOO_LARGE,
    }
)


class OutputProducer:
    """An idempotent producer with a bounded count of undelivered records."""

    def __init__(self, config: dict[str, Any], *, max_pending: int, dead_letter_topic: str) -> None:
        with kafka_errors("cannot create the producer"):
            self._producer: Any = clients.producer(config)
        self.transactional = "transactional.id" in config
        self.max_pending = max_pending
        self.failed = 0
        self._produced = 0  # records asked for; a replacement is its refused record's stand-in
        self.first_error: str | None = None
        self.dead_letter_topic = dead_letter_topic
        self.max_record_bytes = int(config.get("message.max.bytes", DEFAULT_MAX_BYTES))
        self._plain_limit = self.max_record_bytes - RECORD_OVERHEAD
        self.oversized = 0
        self.rerouted = 0  # oversized records of other topics now on the dead-letter topic
        # Records the broker refused as too large, with their generation, awaiting replacement.
        self._refused: list[
            tuple[Generation, str, bytes | None, bytes | None, Headers | None, int]
        ] = []
        self._generations = Generations(self._on_failed_delivery)

    @property
    def pending(self) -> int:
        """Records without a final delivery report (a refused one until its replacement's)."""
        return self._generations.pending

    @property
    def delivered(self) -> int:
        return self._produced - self.pending - self.failed

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int = -1,
    ) -> None:
        """Queue one record; ``value=None`` is a tombstone, ``partition=-1`` lets the key decide."""
        limit = self.max_record_bytes
        # Only lengths on the common path; the exact estimate when the record might not fit.
        plain = (len(key) if key else 0) + (len(value) if value else 0)
        if (headers or plain > self._plain_limit) and record_size(key, value, headers) > limit:
            topic, key, value, headers = self._replace(topic, key, value, headers, limit, None)
            partition = -1
        generation = self._generations.current
        try:
            self._send(topic, key, value, headers, partition, generation.report)
        except confluent_kafka.KafkaException as exc:
            if error_code(exc) not in _TOO_LARGE:
                raise to_casewatch(exc, f"cannot produce to {topic!r}") from exc
            # Our size estimate fell short of librdkafka's: shrink below what it refused.
            limit = min(limit, record_size(key, value, headers)) // 2
            topic, key, value, headers = self._replace(
                topic, key, value, headers, limit, reason(exc)
            )
            self._send(topic, key, value, headers, -1, generation.report)
        generation.pending += 1
        self._produced += 1

    def produce_many(
        self,
        topic: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        partitions: Sequence[int] | None = None,
    ) -> None:
        """Queue one record per key and value (and partition, else the key decides), in order,
        each as ``produce`` would.

        On the common path a record costs a length check and the librdkafka call; a record that
        might be too large, or one librdkafka does not take at once (full queue, refused size),
        goes through ``produce`` with everything it guarantees.
        """
        send, limit = self._producer.produce, self._plain_limit
        generation = self._generations.current
        report = generation.report
        if partitions is None:
            partitions = [-1] * len(keys)
        queued = 0
        try:
            for key, value, partition in zip(keys, values, partitions, strict=True):
                if len(key) + len(value) <= limit:
                    try:
                        send(topic, value=value, key=key, partition=partition, on_delivery=report)
                    except (BufferError, confluent_kafka.KafkaException):
                        pass
                    else:
                        queued += 1
                        continue
                # Counted first: produce() may serve delivery reports of the records just queued.
                generation.pending += queued
                self._produced += queued
                queued = 0
                self.produce(topic, key, value, None, partition)
        finally:
            generation.pending += queued
            self._produced += queued

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        partition: int,
        on_delivery: Any,
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    partition=partition,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                # librdkafka's queue is full: serve delivery reports to make room, then retry.
                self._serve(0.05)

    def _replace(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        limit: int,
        cause: str | None,
    ) -> tuple[str, bytes | None, bytes, Headers]:
        dead_letter = self.dead_letter_topic
        record = replace_oversized(topic, key, value, headers, limit, cause, dead_letter)
        self.oversized += 1
        if topic != dead_letter:
            self.rerouted += 1
        return dead_letter, record.key, record.value, record.headers

    def mark(self) -> int:
        """Start a new generation; returns the one that holds everything produced so far."""
        return self._generations.mark()

    def delivered_through(self, generation: int) -> bool:
        """Whether every record of ``generation`` and older ones has been delivered.

        Raises DeliveryFailure when any record has failed.
        """
        self.raise_first_error()
        return self._generations.delivered_through(generation)

    def poll(self, timeout: float = 0.0) -> None:
        self._serve(timeout)

    def _serve(self, timeout: float) -> None:
        """Serve delivery reports, then replace what the broker refused as too large."""
        self._producer.poll(timeout)
        if self._refused:
            self._replace_refused()

    def _replace_refused(self) -> None:
        refused, self._refused = self._refused, []
        for generation, topic, key, value, headers, size in refused:
            # Half the refused size: the broker's limit is unknown, only that it is lower.
            limit = min(self.max_record_bytes, size // 2)
            cause = f"the broker refused {size} bytes as too large"
            record = self._replace(topic, key, value, headers, limit, cause)
            # The replacement stands in the refused record's generation, so no checkpoint
            # commits past the input before the replacement is delivered.
            self._send(*record, -1, generation.report)

    def over_limit(self) -> bool:
        return self.pending > self.max_pending

    def drain_below(
        self, target: int, *, timeout: float, stopping: Callable[[], bool] = lambda: False
    ) -> bool:
        """Serve delivery reports until at most ``target`` records are undelivered.

        Gives up after ``timeout`` seconds or once ``stopping`` turns true; True when the target
        was reached. Raises DeliveryFailure when any record has failed.
        """
        deadline = time.monotonic() + timeout
        while self.pending > target:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stopping():
                break
            self._serve(min(remaining, 0.1))
            self.raise_first_error()
        return self.pending <= target

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every record; True when all are delivered.

        Raises DeliveryFailure when any record has failed since the producer started.
        """
        deadline = time.monotonic() + timeout
        while self.pending > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._producer.flush(remaining)
            if self._refused:
                self._replace_refused()
        self.raise_first_error()
        return self.pending == 0

    # -- transactions (processing_guarantee=exactly_once) -------------------------------------

    def start_transactions(self, timeout: float) -> None:
        """Register the transactional id (fencing any older instance with it), open one."""
        self._transactional(lambda: self._producer.init_transactions(timeout))
        self._transactional(self._producer.begin_transaction)

    def commit_transaction(self, offsets: list[Any], group: Any, timeout: float) -> None:
        """Commit outputs and input offsets atomically, then open the next transaction."""
        self._transactional(
            lambda: self._producer.send_offsets_to_transaction(offsets, group, timeout)
        )
        # commit_transaction flushes, so every delivery report has been served afterwards.
        self._transactional(lambda: self._producer.commit_transaction(timeout))
        self.raise_first_error()
        self._transactional(self._producer.begin_transaction)

    def _transactional(self, call: Any) -> None:
        # An aborted transaction discarded outputs whose input is already applied to the
        # in-memory cases: only a restart (restore from the changelog) makes them agree again.
        with kafka_errors("transaction failed"):
            call()

    def raise_first_error(self) -> None:
        if self.first_error is not None:
            raise DeliveryFailure(f"output not delivered: {self.first_error}")

    def _on_failed_delivery(self, generation: Generation, error: Any, message: Any) -> None:
        """A delivery report with an error (successes are counted by ``Generation.report``)."""
        if error.code() in _TOO_LARGE and self._refused_too_large(generation, message):
            return
        generation.pending -= 1
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{message.topic()}[{message.partition()}]: {error.str()}"

    def _refused_too_large(self, generation: Generation, message: Any) -> bool:
        """Keep a refused record for replacement; False when it cannot be shrunk further."""
        key, value, headers = message.key(), message.value(), message.headers()
        size = record_size(key, value, headers)
        if size // 2 < SMALLEST_LIMIT:
            return False
        # Still pending: its replacement takes its place in the count.
        self._refused.append((generation, message.topic(), key, value, headers, size))
        return True
