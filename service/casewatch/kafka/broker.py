"""An embedded Kafka-protocol broker for tests and the demo, and topic creation.

The broker is librdkafka's mock cluster: a client started with ``test.mock.num.brokers`` serves
the Kafka protocol on a local TCP port for as long as that client lives. Other clients (in this
process or any other) connect to it like to any broker. Its limits: Admin CreateTopics times out,
topics auto-create with 4 partitions on a metadata request, and each partition keeps a bounded
log, so large backlogs must be consumed while they are produced.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

import confluent_kafka
from confluent_kafka.cimpl import NewTopic

from casewatch.errors import KafkaFailure
from casewatch.kafka import clients

_QUIET = {"log_level": 3}  # errors only: the mock cluster logs every connection at notice level


class EmbeddedBroker:
    """A mock-cluster broker that lives as long as this object is open."""

    def __init__(self, *, brokers: int = 1) -> None:
        self._client: Any = clients.producer({"test.mock.num.brokers": brokers, **_QUIET})
        try:
            metadata = self._client.list_topics(timeout=10)
        except confluent_kafka.KafkaException as exc:
            raise KafkaFailure(f"embedded broker did not start: {exc}") from exc
        addresses = sorted(f"{b.host}:{b.port}" for b in metadata.brokers.values())
        if not addresses:
            raise KafkaFailure("embedded broker did not report an address")
        self.bootstrap_servers = ",".join(addresses)

    def close(self) -> None:
        # Dropping the last reference to the client stops the mock cluster's threads.
        self._client = None


@contextlib.contextmanager
def embedded_broker() -> Iterator[str]:
    """Run an embedded broker for the duration of the block; yields its bootstrap servers."""
    broker = EmbeddedBroker()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.close()


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int | None = None,
    timeout: float = 10.0,
) -> dict[str, int]:
    """Make sure ``topics`` exist; returns each topic's partition count.

    With ``partitions`` set, CreateTopics is tried first (real Kafka); brokers that do not answer
    it (the embedded one) fall back to auto-creation by a metadata request, which uses the
    broker's default partition count.
    """
    names = list(dict.fromkeys(topics))
    config = {"bootstrap.servers": bootstrap_servers, **_QUIET}
    if partitions is not None:
        _create_with_admin(config, names, partitions, timeout)
    client: Any = clients.producer(config)
    counts: dict[str, int] = {}
    try:
        for name in names:
            counts[name] = _partition_count(client, name, timeout)
    finally:
        client.flush(0)
    return counts


def _create_with_admin(
    config: dict[str, Any], names: list[str], partitions: int, timeout: float
) -> None:
    admin = clients.admin(config)
    futures = admin.create_topics(
        [NewTopic(name, partitions, 1) for name in names],
        operation_timeout=min(timeout, 3.0),
        request_timeout=min(timeout, 3.0),
    )
    for future in futures.values():
        # Already-existing topics and brokers without a controller both end up in the
        # metadata fallback, which reports what actually exists.
        with contextlib.suppress(confluent_kafka.KafkaException):
            future.result(timeout=timeout)
    # The client's log lines are handed over by poll; without it they would be dropped.
    admin.poll(0)


def _partition_count(client: Any, name: str, timeout: float) -> int:
    # A freshly auto-created topic can report "leader not available" for a moment.
    deadline = time.monotonic() + timeout
    reason: object = "no metadata"
    while time.monotonic() < deadline:
        try:
            metadata = client.list_topics(name, timeout=max(0.1, deadline - time.monotonic()))
        except confluent_kafka.KafkaException as exc:
            raise KafkaFailure(f"cannot create or find topic {name!r}: {exc}") from exc
        topic = metadata.topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            return len(topic.partitions)
        reason = topic.error if topic is not None else "no metadata"
        time.sleep(0.1)
    raise KafkaFailure(f"cannot create or find topic {name!r}: {reason}")
