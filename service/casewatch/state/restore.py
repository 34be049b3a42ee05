"""Rebuilding the open cases of newly assigned partitions from the changelog.

New input partitions stay paused while their changelog partition is read from the beginning to
the end it had when the restore began, a bounded chunk per loop iteration so the loop keeps
serving other partitions, probes and rebalances. Then they resume from their committed offset.

The changelog may be ahead of the committed input offset: a crash between writing state and
committing offsets leaves state that already reflects some input the group will deliver again.
Changelog records are only written after every output derived from that input was delivered,
so such input must not be applied twice: the ReplayGuard skips, per case, the events at or
before the offset the restored state (or tombstone) reflects.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import confluent_kafka

from casewatch.kafka import clients
from casewatch.kafka.errors import raise_if_fatal
from casewatch.state.changelog import SOURCE_OFFSET_HEADER
from casewatch.state.codec import StateFormatError
from casewatch.telemetry.logging import get_logger

log = get_logger(__name__)
_POLL_SECONDS = 0.05


class _Restorable(Protocol):
    def restore_case(self, case_id: str, state: bytes) -> None: ...

    def forget_case(self, case_id: str) -> None: ...

    def last_offset(self, case_id: str) -> int | None: ...


class ReplayGuard:
    """Skips input events already reflected in restored state, until each partition passes it."""

    def __init__(self, evaluator: _Restorable) -> None:
        self._evaluator = evaluator
        self.windows: dict[int, int] = {}  # partition -> first offset no restored state covers
        self._closed: dict[int, dict[str, int]] = {}  # partition -> case -> tombstone offset

    def restored(self, partition: int, offset: int) -> None:
        if offset >= self.windows.get(partition, 0):
            self.windows[partition] = offset + 1

    def closed(self, partition: int, case_id: str, offset: int) -> None:
        self._closed.setdefault(partition, {})[case_id] = offset
        self.restored(partition, offset)

    def already_applied(self, partition: int, offset: int, case_id: str) -> bool:
        """Whether restored state already reflects this event; only for partitions in windows."""
        applied = self._evaluator.last_offset(case_id)
        if applied is None:
            applied = self._closed.get(partition, {}).get(case_id, -1)
        if offset >= self.windows[partition] - 1:
            self.drop(partition)  # no restored state reflects anything later
        return offset <= applied

    def drop(self, partition: int) -> None:
        self.windows.pop(partition, None)
        self._closed.pop(partition, None)


class Restorer:
    """Reads changelog partitions into the evaluator; reports the partitions that finished."""

    def __init__(
        self,
        changelog: str,
        consumer_config: dict[str, Any],
        evaluator: _Restorable,
        *,
        batch_size: int,
    ) -> None:
        self._changelog = changelog
        self._config = consumer_config
        self._evaluator = evaluator
        self._batch_size = batch_size
        self._consumer: Any = None
        self._ends: dict[int, int] = {}  # partition -> offset where its restore is complete
        self._started: dict[int, float] = {}
        self.guard = ReplayGuard(evaluator)
        self.records = 0

    @property
    def restoring(self) -> bool:
        return bool(self._started)

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions being restored: paused until their cases are loaded."""
        return frozenset(self._started)

    def begin(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._started[partition] = time.monotonic()
            self._ends.pop(partition, None)

    def cancel(self, partitions: set[int]) -> None:
        """Partitions revoked or lost, mid-restore or not: forget their progress."""
        ongoing = [p for p in partitions if p in self._ends]
        for partition in partitions:
            self._started.pop(partition, None)
            self._ends.pop(partition, None)
            self.guard.drop(partition)
        if ongoing and self._consumer is not None:
            self._consumer.incremental_unassign(self._topic_partitions(ongoing))

    def step(self) -> dict[int, float]:
        """Restore one chunk; returns {partition: seconds taken} for partitions now complete."""
        if not self._started:
            return {}
        finished: dict[int, float] = {}
        self._start_new(finished)
        if self._ends:
            for message in self._consumer.consume(self._batch_size, _POLL_SECONDS):
                self._apply(message)
            for tp in self._consumer.position(self._topic_partitions(list(self._ends))):
                if tp.offset >= self._ends[tp.partition]:
                    self._finish(tp.partition, finished)
        return finished

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _start_new(self, finished: dict[int, float]) -> None:
        new = [p for p in self._started if p not in self._ends]
        if not new:
            return
        if self._consumer is None:
            self._consumer = clients.consumer(self._config)
        reading = []
        for tp in self._topic_partitions(new):
            low, high = self._consumer.get_watermark_offsets(tp, timeout=10)
            if high <= low:
                self._finish(tp.partition, finished)
                continue
            self._ends[tp.partition] = high
            tp.offset = confluent_kafka.OFFSET_BEGINNING
            reading.append(tp)
        if reading:
            self._consumer.incremental_assign(reading)

    def _apply(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            raise_if_fatal(error, "changelog read failed")
            return
        partition, key, state = message.partition(), message.key(), message.value()
        if partition not in self._ends or key is None:
            return
        case_id = key.decode()
        self.records += 1
        if state is None:
            offset = int(dict(message.headers() or ()).get(SOURCE_OFFSET_HEADER, b"-1"))
            self._evaluator.forget_case(case_id)
            self.guard.closed(partition, case_id, offset)
            return
        try:
            self._evaluator.restore_case(case_id, state)
        except StateFormatError as exc:
            # A record from another model shape cannot be applied; the case restarts from the
            # events that arrive next instead of stopping the whole partition.
            log.warning("changelog_record_skipped", case_id=case_id, reason=str(exc))
            return
        reflected = self._evaluator.last_offset(case_id)
        if reflected is not None:
            self.guard.restored(partition, reflected)

    def _finish(self, partition: int, finished: dict[int, float]) -> None:
        started = self._started.pop(partition, None)
        if started is not None:
            finished[partition] = time.monotonic() - started
        if self._ends.pop(partition, None) is not None and self._consumer is not None:
            self._consumer.incremental_unassign(self._topic_partitions([partition]))

    def _topic_partitions(self, partitions: list[int]) -> list[Any]:
        return [confluent_kafka.TopicPartition(self._changelog, p) for p in partitions]
