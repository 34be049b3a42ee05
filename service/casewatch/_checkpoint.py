"""Input offsets the daemon may commit, and the commit itself.

At-least-once (the default), as numbered steps:

1. flush: every evaluation and dead letter derived from the input read so far is delivered;
2. write the changelog (state of changed cases, tombstones of cases that left) and flush it —
   only now, so a state record never reflects input whose outputs could still be lost;
3. commit offset + 1 of the last message handled, per partition, synchronously;
4. remember it, so offsets only move forward.

Exactly-once: steps 1-3 are one Kafka transaction (outputs, changelog and the input offsets sent
with ``send_offsets_to_transaction``), committed on the same interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import confluent_kafka

from casewatch._outputs import OutputProducer

Clock = Callable[[], float]


class Checkpoint:
    """Offsets per partition of one input topic that only move forward, committed on an interval."""

    def __init__(
        self,
        topic: str,
        *,
        interval: float,
        write_changelog: Callable[[], int],
        clock: Clock = time.monotonic,
    ) -> None:
        self.topic = topic
        self.interval = interval
        self._write_changelog = write_changelog
        self._clock = clock
        self._last_commit = clock()
        self.commits = 0
        self.changelog_records = 0
        self.processed: dict[int, int] = {}  # partition -> highest offset handled
        self.committed: dict[int, int] = {}  # partition -> next offset to read, as committed

    def expired(self) -> bool:
        return self._clock() - self._last_commit >= self.interval

    def committable(self) -> list[tuple[int, int]]:
        """(partition, next offset) pairs ahead of what is committed."""
        return [
            (partition, highest + 1)
            for partition, highest in self.processed.items()
            if highest + 1 > self.committed.get(partition, -1)
        ]

    def commit(self, consumer: Any, outputs: OutputProducer, *, flush_timeout: float) -> bool:
        """Run the steps above; False when outputs are still in flight after ``flush_timeout``.

        Raises DeliveryFailure when an output could not be delivered (nothing is committed then),
        KafkaFailure when a transaction fails, and confluent_kafka.KafkaException when the broker
        rejects the commit.
        """
        offsets = self.committable()
        if outputs.transactional:
            self.changelog_records += self._write_changelog()
            partitions = [confluent_kafka.TopicPartition(self.topic, p, o) for p, o in offsets]
            group = consumer.consumer_group_metadata()
            outputs.commit_transaction(partitions, group, flush_timeout)
        else:
            if not outputs.flush(flush_timeout):
                return False
            self.changelog_records += self._write_changelog()
            if not outputs.flush(flush_timeout):
                return False
            if offsets:
                self._commit_offsets(consumer, offsets)
        self.committed.update(offsets)
        if offsets:
            self.commits += 1
        self._last_commit = self._clock()
        return True

    def _commit_offsets(self, consumer: Any, offsets: list[tuple[int, int]]) -> None:
        partitions = [confluent_kafka.TopicPartition(self.topic, p, o) for p, o in offsets]
        results = consumer.commit(offsets=partitions, asynchronous=False)
        failed = [tp for tp in results or () if tp.error is not None]
        if failed:
            raise confluent_kafka.KafkaException(failed[0].error)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this consumer no longer owns."""
        for partition in partitions:
            self.processed.pop(partition, None)
            self.committed.pop(partition, None)
