"""In-memory stand-ins for the confluent-kafka consumer and producer.

Plain classes that record what they are asked to do and behave like the real clients where the
loop's logic depends on it: delivery reports are served only inside ``poll``/``flush`` (so a
record is in flight until then), a consumer reads per-partition logs from a position, paused
partitions yield nothing, and a commit can be rejected with a given error. Tests that need what
only a broker shows (group protocol, retention, transactions) stay in ``tests/integration``.

``install`` puts them in place of ``confluent_kafka.Producer``/``Consumer`` for one test, so
the code under test builds its clients as it always does.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, TypeVar

import confluent_kafka
import pytest

from casewatch.kafka.producer import OutputProducer

DEAD_LETTER_TOPIC = "dlq"
Headers = list[tuple[str, bytes]]
Journal = list[tuple[str, str, Any]]
Client = TypeVar("Client", "FakeProducer", "FakeConsumer")


class FakeMessage:
    """What ``consume`` returns and what a delivery report carries."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None = None,
        value: bytes | None = None,
        headers: Headers | None = None,
        *,
        error: confluent_kafka.KafkaError | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers = key, value, headers
        self._error = error
        self._timestamp_ms = timestamp_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return self._headers

    def error(self) -> confluent_kafka.KafkaError | None:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        if self._timestamp_ms is None:
            return confluent_kafka.TIMESTAMP_NOT_AVAILABLE, -1
        return confluent_kafka.TIMESTAMP_CREATE_TIME, self._timestamp_ms


def kafka_error(
    code: int, reason: str = "fake", *, fatal: bool = False
) -> confluent_kafka.KafkaError:
    return confluent_kafka.KafkaError(code, reason, fatal=fatal)


class FakeProducer:
    """Records produced, queued until ``poll``/``flush`` serves their delivery reports.

    ``hold = True`` models a broker that does not answer: nothing is delivered. ``fail[topic]``
    is the error every delivery report of that topic carries. ``queue_limit`` makes ``produce``
    raise BufferError, as librdkafka does when its queue is full.
    """

    def __init__(
        self, config: dict[str, Any] | None = None, journal: Journal | None = None
    ) -> None:
        self.config = dict(config or {})
        self.journal: Journal = journal if journal is not None else []
        self.produced: list[FakeMessage] = []
        self.delivered: list[FakeMessage] = []
        self.fail: dict[str, confluent_kafka.KafkaError] = {}
        self.hold = False
        self.queue_limit: int | None = None
        self.buffer_errors = 0
        self.transactions: list[str] = []
        self._queue: list[tuple[FakeMessage, Any]] = []
        self._next_offset: dict[tuple[str, int], int] = {}

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int = -1,
        on_delivery: Any = None,
    ) -> None:
        if self.queue_limit is not None and len(self._queue) >= self.queue_limit:
            self.buffer_errors += 1
            raise BufferError("Local: Queue full")
        number = partition if partition >= 0 else 0
        offset = self._next_offset.get((topic, number), 0)
        self._next_offset[topic, number] = offset + 1
        message = FakeMessage(topic, number, offset, key, value, headers)
        self.produced.append(message)
        self.journal.append(("produce", topic, key))
        self._queue.append((message, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        return self._serve()

    def flush(self, timeout: float = -1) -> int:
        self._serve()
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def release(self, count: int, *, newest: bool = False) -> None:
        """Serve ``count`` delivery reports, the oldest (or newest) first, even while held.

        Reports of records on different partitions arrive in any order.
        """
        hold, self.hold = self.hold, False
        split = len(self._queue) - count if newest else count
        first, last = self._queue[:split], self._queue[split:]
        self._queue, kept = (last, first) if newest else (first, last)
        self._serve()
        self._queue, self.hold = kept + self._queue, hold

    def records(self, topic: str) -> list[FakeMessage]:
        """Records delivered to ``topic``, in order."""
        return [m for m in self.delivered if m.topic() == topic]

    def _serve(self) -> int:
        if self.hold:
            return 0
        queue, self._queue = self._queue, []
        for message, on_delivery in queue:
            error = self.fail.get(message.topic())
            if error is None:
                self.delivered.append(message)
            self.journal.append(("delivered" if error is None else "failed", message.topic(), None))
            if on_delivery is not None:
                on_delivery(error, message)
        return len(queue)

    # Transactions are only recorded: what they guarantee needs a broker.
    def init_transactions(self, timeout: float = -1) -> None:
        self.transactions.append("init")

    def begin_transaction(self) -> None:
        self.transactions.append("begin")

    def send_offsets_to_transaction(self, offsets: Any, group: Any, timeout: float = -1) -> None:
        self.transactions.append("send_offsets")

    def commit_transaction(self, timeout: float = -1) -> None:
        self._serve()
        self.transactions.append("commit")


class FakeConsumer:
    """A consumer over in-memory partition logs.

    ``logs[(topic, partition)]`` holds the records; ``consume`` reads assigned, unpaused
    partitions from their position. ``commit`` records the offsets (or raises ``commit_error``
    once), ``committed`` answers from what was committed.
    """

    def __init__(
        self, config: dict[str, Any] | None = None, journal: Journal | None = None
    ) -> None:
        self.config = dict(config or {})
        self.journal: Journal = journal if journal is not None else []
        self.logs: dict[tuple[str, int], list[FakeMessage]] = {}
        self.low: dict[tuple[str, int], int] = {}
        self.assigned: list[tuple[str, int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}
        self.commits: list[dict[tuple[str, int], int]] = []
        self.stored: dict[tuple[str, int], int] = {}
        self.commit_error: confluent_kafka.KafkaError | None = None
        self.closed = False
        # Group membership: on the first consume after subscribe, every partition of the
        # subscribed topics is assigned through on_assign, as the group coordinator would.
        self.subscribed: list[str] = []
        self.callbacks: dict[str, Any] = {}
        self.partitions_per_topic = 2
        self._joined = False
        # Called when a consume finds nothing left to read, so a test can stop the loop.
        self.when_drained: Any = None

    def append(self, message: FakeMessage) -> None:
        log = self.logs.setdefault((message.topic(), message.partition()), [])
        log.append(message)

    # -- assignment -------------------------------------------------------------------------

    def assign(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        self.assigned = []
        self.incremental_assign(partitions)

    def incremental_assign(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        for tp in partitions:
            name = (tp.topic, tp.partition)
            if name not in self.assigned:
                self.assigned.append(name)
            self.positions[name] = self._start(name, tp.offset)
        self.journal.append(("assign", "", sorted(_names(partitions))))

    def incremental_unassign(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        for name in _names(partitions):
            if name in self.assigned:
                self.assigned.remove(name)
            self.paused.discard(name)
        self.journal.append(("unassign", "", sorted(_names(partitions))))

    def assignment(self) -> list[confluent_kafka.TopicPartition]:
        return [confluent_kafka.TopicPartition(t, p) for t, p in self.assigned]

    def pause(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        self.paused.update(_names(partitions))
        self.journal.append(("pause", "", sorted(_names(partitions))))

    def resume(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        self.paused.difference_update(_names(partitions))
        self.journal.append(("resume", "", sorted(_names(partitions))))

    def _start(self, name: tuple[str, int], offset: int) -> int:
        if offset >= 0:
            return offset
        if offset == confluent_kafka.OFFSET_BEGINNING:
            return self.low.get(name, 0)
        if offset == confluent_kafka.OFFSET_END:
            return len(self.logs.get(name, []))
        return self.stored.get(name, self.low.get(name, 0))

    # -- group membership -------------------------------------------------------------------

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.subscribed = list(topics)
        self.callbacks = callbacks
        self._joined = False

    def _join(self) -> None:
        self._joined = True
        partitions = [
            confluent_kafka.TopicPartition(topic, number)
            for topic in self.subscribed
            for number in range(self.partitions_per_topic)
        ]
        self.callbacks["on_assign"](self, partitions)

    def revoke(self, partitions: list[confluent_kafka.TopicPartition]) -> None:
        """The group takes partitions away: on_revoke, then they are no longer assigned."""
        self.callbacks["on_revoke"](self, partitions)
        self.incremental_unassign(partitions)

    def _drained(self) -> bool:
        return not self.paused and all(
            self.positions.get(name, 0) >= len(self.logs.get(name, [])) for name in self.assigned
        )

    # -- reading ----------------------------------------------------------------------------

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self.subscribed and not self._joined:
            self._join()
        batch = self._read(num_messages)
        if not batch and self.when_drained is not None and self._drained():
            self.when_drained()
        return batch

    def _read(self, num_messages: int) -> list[FakeMessage]:
        batch: list[FakeMessage] = []
        for name in self.assigned:
            if name in self.paused:
                continue
            log = self.logs.get(name, [])
            position = self.positions.get(name, 0)
            taken = log[position : position + num_messages - len(batch)]
            batch.extend(taken)
            self.positions[name] = position + len(taken)
        return batch

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        batch = self.consume(1, timeout)
        return batch[0] if batch else None

    def position(
        self, partitions: list[confluent_kafka.TopicPartition]
    ) -> list[confluent_kafka.TopicPartition]:
        return [
            confluent_kafka.TopicPartition(
                tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: confluent_kafka.TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        name = (partition.topic, partition.partition)
        return self.low.get(name, 0), len(self.logs.get(name, []))

    # -- offsets ----------------------------------------------------------------------------

    def commit(
        self,
        message: Any = None,
        offsets: list[confluent_kafka.TopicPartition] | None = None,
        asynchronous: bool = True,
    ) -> list[confluent_kafka.TopicPartition]:
        if self.commit_error is not None:
            error, self.commit_error = self.commit_error, None
            self.journal.append(("commit_rejected", "", error.code()))
            raise confluent_kafka.KafkaException(error)
        committed = {(tp.topic, tp.partition): tp.offset for tp in offsets or ()}
        self.commits.append(committed)
        self.stored.update(committed)
        self.journal.append(("commit", "", committed))
        return list(offsets or ())

    def committed(
        self, partitions: list[confluent_kafka.TopicPartition], timeout: float = -1
    ) -> list[confluent_kafka.TopicPartition]:
        return [
            confluent_kafka.TopicPartition(
                tp.topic, tp.partition, self.stored.get((tp.topic, tp.partition), -1001)
            )
            for tp in partitions
        ]

    def consumer_group_metadata(self) -> str:
        return "group-metadata"

    def close(self) -> None:
        # Leaving the group revokes what is assigned, inside close, as librdkafka does.
        if self.subscribed and self._joined and "on_revoke" in self.callbacks:
            mine = [confluent_kafka.TopicPartition(t, p) for t, p in self.assigned]
            self.callbacks["on_revoke"](self, mine)
        self.closed = True
        self.journal.append(("close", "", None))


class FakeAdmin:
    """Metadata only: the topics and their partition counts the cluster has."""

    def __init__(self, topics: dict[str, int]) -> None:
        self.topics = topics

    def __call__(self, config: dict[str, Any]) -> FakeAdmin:
        return self

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> SimpleNamespace:
        found = {
            name: SimpleNamespace(
                error=None, partitions={p: SimpleNamespace(id=p) for p in range(n)}
            )
            for name, n in self.topics.items()
            if topic is None or name == topic
        }
        return SimpleNamespace(topics=found)

    def poll(self, timeout: float = 0) -> int:
        return 0


def _names(partitions: Iterable[confluent_kafka.TopicPartition]) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in partitions}


def install(
    monkeypatch: pytest.MonkeyPatch,
    *,
    producer: FakeProducer | None = None,
    consumer: FakeConsumer | list[FakeConsumer] | None = None,
) -> None:
    """Make ``confluent_kafka.Producer``/``Consumer`` return the given fakes for one test.

    Given a list, each consumer built takes the next fake in it.
    """
    if producer is not None:
        monkeypatch.setattr(
            confluent_kafka, "Producer", lambda config: _configured(producer, config)
        )
    if isinstance(consumer, FakeConsumer):
        monkeypatch.setattr(
            confluent_kafka, "Consumer", lambda config: _configured(consumer, config)
        )
    elif consumer is not None:
        queue = list(consumer)

        def build(config: dict[str, Any]) -> FakeConsumer:
            if not queue:
                raise AssertionError("more consumers built than the test provided")
            return _configured(queue.pop(0), config)

        monkeypatch.setattr(confluent_kafka, "Consumer", build)


def fake_outputs(
    monkeypatch: pytest.MonkeyPatch,
    producer: FakeProducer | None = None,
    *,
    max_pending: int = 1000,
    config: dict[str, Any] | None = None,
) -> tuple[OutputProducer, FakeProducer]:
    """An OutputProducer whose librdkafka producer is a FakeProducer."""
    producer = producer if producer is not None else FakeProducer()
    install(monkeypatch, producer=producer)
    outputs = OutputProducer(
        {"bootstrap.servers": "fake:9092", **(config or {})},
        max_pending=max_pending,
        dead_letter_topic=DEAD_LETTER_TOPIC,
    )
    return outputs, producer


def _configured(client: Client, config: dict[str, Any]) -> Client:
    client.config = dict(config)
    return client
