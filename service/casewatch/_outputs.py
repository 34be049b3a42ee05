"""The daemon's producer: every output record is tracked until its delivery report arrives.

Delivery callbacks run inside ``poll``/``flush`` on the loop's thread. They never raise: they count
the report and keep the first failure, which ``flush`` raises as DeliveryFailure so that no input
offset is committed past an output that was lost.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import confluent_kafka

from casewatch._errors import DeliveryFailure, KafkaFailure

Headers = list[tuple[str, bytes]]
# Dead-letter values beyond this are truncated so the record still fits the broker's limit.
DLQ_VALUE_LIMIT = 900_000
_FENCED = frozenset(
    {
        confluent_kafka.KafkaError._FENCED,
        confluent_kafka.KafkaError.PRODUCER_FENCED,
        confluent_kafka.KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


class OutputProducer:
    """An idempotent producer with a bounded count of undelivered records."""

    def __init__(self, config: dict[str, Any], *, max_pending: int) -> None:
        try:
            self._producer: Any = confluent_kafka.Producer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaFailure(f"cannot create the producer: {exc}") from exc
        self.transactional = "transactional.id" in config
        self.max_pending = max_pending
        self.pending = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        # Records are counted per generation so a checkpoint can wait for "everything produced
        # before now" without blocking on what is produced meanwhile; one bound callback per
        # generation, none per record.
        self._generation = 0
        self._pending_by_generation: dict[int, int] = {0: 0}
        self._on_delivery_now = functools.partial(self._on_delivery, 0)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int = -1,
    ) -> None:
        """Queue one record; ``value=None`` is a tombstone, ``partition=-1`` lets the key decide."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    headers=headers,
                    partition=partition,
                    on_delivery=self._on_delivery_now,
                )
                break
            except BufferError:
                # librdkafka's queue is full: serve delivery reports to make room, then retry.
                self._producer.poll(0.05)
            except confluent_kafka.KafkaException as exc:
                raise KafkaFailure(f"cannot produce to {topic!r}: {exc}") from exc
        self.pending += 1
        self._pending_by_generation[self._generation] += 1

    def mark(self) -> int:
        """Start a new generation; returns the one that holds everything produced so far."""
        closed = self._generation
        self._generation += 1
        self._pending_by_generation[self._generation] = 0
        self._on_delivery_now = functools.partial(self._on_delivery, self._generation)
        return closed

    def delivered_through(self, generation: int) -> bool:
        """Whether every record of ``generation`` and older ones has been delivered.

        Raises DeliveryFailure when any record has failed.
        """
        self.raise_first_error()
        pending = self._pending_by_generation
        for old in [g for g in pending if g < self._generation and pending[g] == 0]:
            del pending[old]
        return all(g > generation for g in pending)

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)

    def over_limit(self) -> bool:
        return self.pending > self.max_pending

    def drain_below(self, target: int, *, poll_other: Any = None) -> None:
        """Serve delivery reports until at most ``target`` records are undelivered.

        ``poll_other`` is called between waits so a paused consumer keeps its group membership.
        """
        while self.pending > target:
            self._producer.poll(0.1)
            self.raise_first_error()
            if poll_other is not None:
                poll_other()

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
        try:
            call()
        except confluent_kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            reason = error.str() if isinstance(error, confluent_kafka.KafkaError) else str(exc)
            if isinstance(error, confluent_kafka.KafkaError) and error.code() in _FENCED:
                raise KafkaFailure(
                    f"fenced by a newer instance with the same transactional id: {reason}"
                ) from None
            # An aborted transaction discarded outputs whose input is already applied to the
            # in-memory cases: only a restart (restore from the changelog) makes them agree again.
            raise KafkaFailure(f"transaction failed: {reason}") from None

    def queue_length(self) -> int:
        return len(self._producer)

    def raise_first_error(self) -> None:
        if self.first_error is not None:
            raise DeliveryFailure(f"output not delivered: {self.first_error}")

    def _on_delivery(self, generation: int, error: Any, message: Any) -> None:
        self.pending -= 1
        self._pending_by_generation[generation] -= 1
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{message.topic()}[{message.partition()}]: {error.str()}"


def dead_letter(message: Any, reason: str, detail: str) -> tuple[bytes | None, bytes, Headers]:
    """Key, value and headers of the dead-letter record for an input message."""
    value: bytes = message.value() or b""
    headers: Headers = [
        ("casewatch.error.reason", reason.encode()),
        ("casewatch.error.detail", detail.encode()[:1000]),
        ("casewatch.source.topic", message.topic().encode()),
        ("casewatch.source.partition", str(message.partition()).encode()),
        ("casewatch.source.offset", str(message.offset()).encode()),
    ]
    if len(value) > DLQ_VALUE_LIMIT:
        headers.append(("casewatch.error.truncated_from", str(len(value)).encode()))
        value = value[:DLQ_VALUE_LIMIT]
    return message.key(), value, headers
