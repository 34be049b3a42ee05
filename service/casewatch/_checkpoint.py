"""Input offsets the daemon may commit, and the commit itself.

At-least-once: an input offset is committed only when (1) every output derived from the messages
up to it has been delivered and (2) no case still open in memory started at or before it. The
second rule matters because open cases live only in memory: committing past the first event of an
open case would lose that event on a restart. Holding the commit back instead means a restarted
daemon re-reads those events and rebuilds the case, so every case still gets an evaluation over
all of its events. Cases that closed after the commit point are evaluated again: with the same
input, hence the same evaluation_id, when they started after it; a case that had already closed
when the commit was made but whose last events lie past it is seen again only from the commit
point, and gets an extra evaluation of that tail (fewer events, another evaluation_id).
The cost of the rule is that a case that stays open holds its partition's commit back until it
closes, times out (idle TTL) or is evicted (max open cases).
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

    def __init__(self, topic: str, *, interval: float, clock: Clock = time.monotonic) -> None:
        self.topic = topic
        self.interval = interval
        self._clock = clock
        self._last_commit = clock()
        self.last_commit_wall = time.time()
        self.commits = 0
        self.processed: dict[int, int] = {}  # partition -> highest offset handled
        self.committed: dict[int, int] = {}  # partition -> next offset to read, as committed
        # partition -> case_id -> offset of the case's first event still held in memory
        self.open_cases: dict[int, dict[str, int]] = {}

    def case_opened(self, partition: int, case_id: str, offset: int) -> None:
        cases = self.open_cases.get(partition)
        if cases is None:
            cases = self.open_cases[partition] = {}
        if case_id not in cases:
            cases[case_id] = offset

    def case_left(self, partition: int, case_id: str) -> None:
        cases = self.open_cases.get(partition)
        if cases is not None:
            cases.pop(case_id, None)

    def expired(self) -> bool:
        return self._clock() - self._last_commit >= self.interval

    def seconds_since_commit(self) -> float:
        return time.time() - self.last_commit_wall

    def committable(self) -> list[tuple[int, int]]:
        """(partition, next offset) pairs ahead of what is committed."""
        result = []
        for partition, highest in self.processed.items():
            safe = highest + 1
            cases = self.open_cases.get(partition)
            if cases:
                safe = min(safe, *cases.values())
            if safe > self.committed.get(partition, -1):
                result.append((partition, safe))
        return result

    def commit(self, consumer: Any, outputs: OutputProducer, *, flush_timeout: float) -> bool:
        """Flush, then commit what is safe; False when outputs are still in flight.

        Raises DeliveryFailure when an output could not be delivered (nothing is committed then).
        Raises confluent_kafka.KafkaException when the broker rejects the commit.
        """
        # Step 1: every output produced so far must be delivered.
        if not outputs.flush(flush_timeout):
            return False
        # Step 2: commit offset + 1 of what is safe, synchronously.
        offsets = self.committable()
        if offsets:
            partitions = [confluent_kafka.TopicPartition(self.topic, p, o) for p, o in offsets]
            results = consumer.commit(offsets=partitions, asynchronous=False)
            failed = [tp for tp in results or () if tp.error is not None]
            if failed:
                raise confluent_kafka.KafkaException(failed[0].error)
            # Step 3: remember the commit so offsets only move forward.
            self.committed.update(offsets)
            self.commits += 1
        self._last_commit = self._clock()
        self.last_commit_wall = time.time()
        return True

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this consumer no longer owns."""
        for partition in partitions:
            self.processed.pop(partition, None)
            self.committed.pop(partition, None)
            self.open_cases.pop(partition, None)
