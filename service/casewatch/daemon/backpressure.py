"""Back-pressure: consumption pauses while too many outputs are undelivered.

It pauses only the partitions that are consuming, and resumes only those: a partition paused
for its restore stays paused until its cases are loaded, whatever the outputs do. A drain waits
at most ``drain_seconds`` per loop iteration and ends early on a stop request; when the outputs
are still over the low-water mark the partitions stay paused and the loop goes on, so its
``consume()`` (which returns nothing from paused partitions) keeps the consumer in its group and
serves rebalances, probes and stop requests as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

import confluent_kafka


class _Outputs(Protocol):
    @property
    def pending(self) -> int: ...
    @property
    def max_pending(self) -> int: ...
    def poll(self, timeout: float = 0.0) -> None: ...
    def over_limit(self) -> bool: ...
    def drain_below(
        self, target: int, *, timeout: float, stopping: Callable[[], bool] = ...
    ) -> bool: ...


class BackPressure:
    """Which input partitions back-pressure paused; ``relieve`` once per loop iteration."""

    def __init__(
        self,
        outputs: _Outputs,
        topic: str,
        *,
        held: Callable[[], Collection[int]],
        drain_seconds: float,
        stopping: Callable[[], bool],
        report: Callable[[int], None],
    ) -> None:
        self._outputs = outputs
        self._topic = topic
        self._held = held  # partitions someone else keeps paused (restores)
        self._drain_seconds = drain_seconds
        self._stopping = stopping
        self._report = report
        self.active = False
        self.paused: set[int] = set()

    def relieve(self, consumer: Any) -> None:
        """Pause when over the limit; resume what was paused once below half of it."""
        outputs = self._outputs
        outputs.poll(0)
        if not self.active:
            if not outputs.over_limit():
                return
            self._pause(consumer)
        drained = outputs.drain_below(
            outputs.max_pending // 2, timeout=self._drain_seconds, stopping=self._stopping
        )
        if drained:
            self._resume(consumer)

    def resume_restored(self, consumer: Any, partitions: Collection[int]) -> None:
        """Resume partitions whose restore finished, unless back-pressure is on: then at its end."""
        if self.active:
            self.paused.update(partitions)
            return
        consumer.resume(self._topic_partitions(partitions))

    def _pause(self, consumer: Any) -> None:
        held = self._held()
        consuming = {tp.partition for tp in consumer.assignment()} - set(held)
        if consuming:
            consumer.pause(self._topic_partitions(consuming))
        # Active even when nothing was consuming, so restores finishing now wait for the relief.
        self.active = True
        self.paused = consuming
        self._report(1)

    def _resume(self, consumer: Any) -> None:
        # Partitions revoked meanwhile are no longer ours; those restoring stay paused.
        assigned = {tp.partition for tp in consumer.assignment()}
        resumable = (self.paused & assigned) - set(self._held())
        self.active = False
        self.paused = set()
        if resumable:
            consumer.resume(self._topic_partitions(resumable))
        self._report(0)

    def _topic_partitions(self, partitions: Collection[int]) -> list[Any]:
        return [confluent_kafka.TopicPartition(self._topic, p) for p in sorted(partitions)]
