"""The changelog records of a checkpoint, held until the checkpoint hands them to the producer.

``casewatch.state.changelog.write_changes`` writes into the buffer as if it were the producer;
the checkpoint drains it a slice per loop iteration (``casewatch.daemon.checkpoint``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from casewatch.kafka.producer import OutputProducer


class ChangelogBuffer:
    """Stands in for the producer while the changelog is written; the checkpoint drains it.

    Records keep their order in runs of one topic: the columns of one ``produce_many``, which
    the drain hands on whole (or cut at its limit) to the producer's batch path, or records of
    consecutive ``produce`` calls (tombstones, with headers), handed on one by one.
    """

    def __init__(self) -> None:
        self._runs: deque[_Columns | _Singles] = deque()
        self.size = 0  # records held

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        partition: int = -1,
    ) -> None:
        runs = self._runs
        run = runs[-1] if runs else None
        if not isinstance(run, _Singles) or run.topic != topic:
            run = _Singles(topic)
            runs.append(run)
        run.records.append((key, value, headers, partition))
        self.size += 1

    def produce_many(
        self,
        topic: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        partitions: Sequence[int] | None = None,
    ) -> None:
        """Keeps the sequences it is given: the caller hands them over."""
        if keys:
            partitions = [-1] * len(keys) if partitions is None else partitions
            self._runs.append(_Columns(topic, keys, values, partitions))
            self.size += len(keys)

    def drain(self, outputs: OutputProducer, limit: int | None = None) -> bool:
        """Produce up to ``limit`` records (all by default), oldest first; True when empty."""
        budget = self.size if limit is None else limit
        runs = self._runs
        while runs and budget > 0:
            run = runs.popleft()
            if len(run) > budget:
                runs.appendleft(run.cut(budget, len(run)))
                run = run.cut(0, budget)
            budget -= len(run)
            self.size -= len(run)
            run.produce(outputs)
        return not runs

    def forget(self, partitions: set[int]) -> None:
        kept = (run.without(partitions) for run in self._runs)
        self._runs = deque(run for run in kept if len(run))
        self.size = sum(len(run) for run in self._runs)


@dataclass(slots=True)
class _Columns:
    """The records of one ``produce_many``: no headers, no tombstones."""

    topic: str
    keys: Sequence[bytes]
    values: Sequence[bytes]
    partitions: Sequence[int]

    def __len__(self) -> int:
        return len(self.keys)

    def produce(self, outputs: OutputProducer) -> None:
        outputs.produce_many(self.topic, self.keys, self.values, self.partitions)

    def cut(self, start: int, stop: int) -> _Columns:
        return _Columns(self.topic, self.keys[start:stop], self.values[start:stop],
                        self.partitions[start:stop])  # fmt: skip

    def without(self, partitions: set[int]) -> _Columns:
        kept = [i for i, p in enumerate(self.partitions) if p not in partitions]
        return _Columns(self.topic, [self.keys[i] for i in kept], [self.values[i] for i in kept],
                        [self.partitions[i] for i in kept])  # fmt: skip


@dataclass(slots=True)
class _Singles:
    """Records of consecutive ``produce`` calls: (key, value, headers, partition) each."""

    topic: str
    records: list[tuple[bytes | None, bytes | None, Any, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def produce(self, outputs: OutputProducer) -> None:
        produce, topic = outputs.produce, self.topic
        for record in self.records:
            produce(topic, *record)

    def cut(self, start: int, stop: int) -> _Singles:
        return _Singles(self.topic, self.records[start:stop])

    def without(self, partitions: set[int]) -> _Singles:
        return _Singles(self.topic, [r for r in self.records if r[3] not in partitions])
