"""Input offsets the daemon may commit, and the commit itself.

At-least-once (the default), as numbered steps:

1. every evaluation and dead letter derived from the input read so far is delivered;
2. write the changelog (state of changed cases, tombstones of cases that left) and wait until it
   is delivered — only now, so a state record never reflects input whose outputs could be lost;
3. commit offset + 1 of the last message handled at step 1, per partition, synchronously;
4. remember it, so offsets only move forward.

On the interval the steps run without blocking the loop (``advance``): each waits for its
producer generation to be delivered while the loop goes on producing newer records, and the
changelog of step 2 is handed to the producer a slice per loop iteration (``ChangelogBuffer``),
so a checkpoint of many changed cases never holds one batch's evaluations back for long. On
revoke and shutdown they run blocking (``commit``).

Exactly-once: steps 1-3 are one Kafka transaction (outputs, changelog and the input offsets sent
with ``send_offsets_to_transaction``), committed on the same interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import confluent_kafka

from casewatch.daemon.changelog_buffer import ChangelogBuffer
from casewatch.kafka.producer import OutputProducer

Clock = Callable[[], float]

# Changelog records handed to the producer per loop iteration: a few milliseconds of work, and
# never less than a quarter of what is left, so a large changelog still takes few iterations
# and the checkpoint keeps its interval.
CHANGELOG_SLICE = 500
_SLICES = 4


class Checkpoint:
    """Offsets per partition of one input topic that only move forward, committed on an interval."""

    def __init__(
        self,
        topic: str,
        *,
        interval: float,
        write_changelog: Callable[[], int],
        buffer: ChangelogBuffer | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.topic = topic
        self.interval = interval
        self._write_changelog = write_changelog
        # Where write_changelog puts its records when it does not produce them itself.
        self._buffer = buffer
        self._clock = clock
        self._last_commit = clock()
        self.commits = 0
        self.changelog_records = 0
        self.processed: dict[int, int] = {}  # partition -> highest offset handled
        self.committed: dict[int, int] = {}  # partition -> next offset to read, as committed
        # The checkpoint under way in the background: its offsets, the step it waits for
        # ("outputs" or "changelog") and the producer generation that step waits on.
        self._offsets: dict[int, int] = {}
        self._step = ""
        self._generation = -1

    def expired(self) -> bool:
        return self._clock() - self._last_commit >= self.interval

    @property
    def under_way(self) -> bool:
        """A background checkpoint has begun and waits for deliveries or the changelog."""
        return bool(self._step)

    def next_step_in(self) -> float:
        """Seconds until ``advance`` has work: none while a checkpoint is under way (it moves
        once deliveries are reported), else what is left of the interval."""
        if self._step:
            return 0.0
        return max(0.0, self.interval - (self._clock() - self._last_commit))

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
            self._write_all(outputs)
            partitions = [confluent_kafka.TopicPartition(self.topic, p, o) for p, o in offsets]
            group = consumer.consumer_group_metadata()
            outputs.commit_transaction(partitions, group, flush_timeout)
        else:
            if not outputs.flush(flush_timeout):
                return False
            self._write_all(outputs)
            if not outputs.flush(flush_timeout):
                return False
            if offsets:
                self._commit_offsets(consumer, offsets)
        self.committed.update(offsets)
        if offsets:
            self.commits += 1
        self._last_commit = self._clock()
        self._step = ""  # this commit covers whatever was under way
        return True

    def advance(self, consumer: Any, outputs: OutputProducer) -> bool:
        """Move the background checkpoint one step when it can; True when one completed."""
        if not self._step:
            if not self.expired():
                return False
            self._offsets = dict(self.committable())
            self._generation = outputs.mark()
            self._step = "outputs"
        if self._step == "outputs":
            if not outputs.delivered_through(self._generation):
                return False
            self.changelog_records += self._write_changelog()
            self._step = "slices"
        if self._step == "slices":
            buffer = self._buffer
            if buffer is not None:
                limit = max(CHANGELOG_SLICE, buffer.size // _SLICES)
                if not buffer.drain(outputs, limit):
                    return False
            self._generation = outputs.mark()
            self._step = "changelog"
        # An empty changelog is delivered already: the commit need not wait for the next call.
        if not outputs.delivered_through(self._generation):
            return False
        offsets = [(p, o) for p, o in self._offsets.items() if o > self.committed.get(p, -1)]
        self._step = ""
        self._last_commit = self._clock()
        if offsets:
            self._commit_offsets(consumer, offsets)
            self.committed.update(offsets)
            self.commits += 1
        return True

    def _write_all(self, outputs: OutputProducer) -> None:
        """The whole changelog into the producer now, after what a background step left over."""
        if self._buffer is not None:
            self._buffer.drain(outputs)
        self.changelog_records += self._write_changelog()
        if self._buffer is not None:
            self._buffer.drain(outputs)

    def _commit_offsets(self, consumer: Any, offsets: list[tuple[int, int]]) -> None:
        partitions = [confluent_kafka.TopicPartition(self.topic, p, o) for p, o in offsets]
        results = consumer.commit(offsets=partitions, asynchronous=False)
        failed = [tp for tp in results or () if tp.error is not None]
        if failed:
            raise confluent_kafka.KafkaException(failed[0].error)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions this consumer no longer owns."""
        partitions = set(partitions)
        if self._buffer is not None:
            # Their state is the new owner's to write now.
            self._buffer.forget(partitions)
        for partition in partitions:
            self.processed.pop(partition, None)
            self.committed.pop(partition, None)
            self._offsets.pop(partition, None)
