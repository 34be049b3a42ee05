"""librdkafka configuration of casewatch's clients, built from the options.

Pass-through properties (``CASEWATCH_KAFKA__*``) go to every client that understands them:
consumer-only properties (group membership, fetching) are kept away from producers and
producer-only ones (batching, acks, transactions) away from consumers, so librdkafka does not
warn about properties a client ignores.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka

from casewatch.errors import ConfigError
from casewatch.kafka import clients
from casewatch.kafka.errors import reason


@dataclass(frozen=True)
class ClientOptions:
    """What the client configurations are built from; ``properties`` are the pass-through
    ``CASEWATCH_KAFKA__*`` librdkafka properties with their secrets revealed (never printed)."""

    bootstrap_servers: str
    group_id: str
    auto_offset_reset: str = "earliest"
    max_pending_outputs: int = 200_000
    processing_guarantee: str = "at_least_once"
    transactional_id: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)


_CONSUMER_ONLY = (
    "group.", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
    "auto.", "enable.auto.", "fetch.", "isolation.level", "partition.assignment.strategy",
    "enable.partition.eof", "check.crcs", "queued.", "coordinator.query.interval.ms",
    "consume.callback.max.messages",
)  # fmt: skip
_PRODUCER_ONLY = (
    "acks", "request.required.acks", "linger.ms", "queue.buffering.", "batch.", "compression.",
    "enable.idempotence", "enable.gapless.guarantee", "transactional.id",
    "transaction.timeout.ms", "message.timeout.ms", "delivery.timeout.ms", "retries",
    "message.send.max.retries", "retry.backoff", "partitioner", "sticky.partitioning.linger.ms",
    "request.timeout.ms", "queuing.strategy",
)  # fmt: skip


def _for(options: ClientOptions, role: str) -> dict[str, str]:
    excluded = _PRODUCER_ONLY if role == "consumer" else _CONSUMER_ONLY
    return {k: v for k, v in options.properties.items() if not k.startswith(excluded)}


def consumer_config(options: ClientOptions) -> dict[str, Any]:
    """The input consumer: offsets are stored and committed by casewatch, never automatically."""
    config: dict[str, Any] = {
        "bootstrap.servers": options.bootstrap_servers,
        "group.id": options.group_id,
        "client.id": f"{options.group_id}-consumer",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": options.auto_offset_reset,
        # Cooperative rebalancing moves only the partitions that change owner, so the others
        # keep their in-memory cases and never restore.
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        "isolation.level": "read_committed",
    }
    config.update(_for(options, "consumer"))
    return config


def restore_consumer_config(options: ClientOptions) -> dict[str, Any]:
    """A group-less reader of the changelog: assigned partitions only, nothing committed."""
    config = {k: v for k, v in consumer_config(options).items() if not k.startswith(_CONSUMER_ONLY)}
    config.update(
        {
            "group.id": f"{options.group_id}-restore",
            "client.id": f"{options.group_id}-restore",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "isolation.level": "read_committed",
            # A restore reads a backlog: never let a fetch wait for more data to arrive.
            "fetch.wait.max.ms": 10,
        }
    )
    return config


def producer_config(options: ClientOptions) -> dict[str, Any]:
    """The output producer: idempotent, acks from all replicas, batched."""
    config: dict[str, Any] = {
        "bootstrap.servers": options.bootstrap_servers,
        "client.id": f"{options.group_id}-producer",
        "acks": "all",
        "enable.idempotence": True,
        # Evaluations wait in the producer's batch at most this long: short, for latency; at
        # high rates batches fill before it expires anyway.
        "linger.ms": 2,
        # lz4 costs the least CPU per byte of the broker-supported codecs.
        "compression.type": "lz4",
        "queue.buffering.max.messages": options.max_pending_outputs,
    }
    if options.processing_guarantee == "exactly_once":
        config["transactional.id"] = options.transactional_id or (
            f"casewatch-{options.group_id}-{socket.gethostname()}"
        )
    config.update(_for(options, "producer"))
    return config


def admin_config(options: ClientOptions) -> dict[str, Any]:
    """Admin and metadata requests: connection and security properties only."""
    shared = {
        k: v
        for k, v in options.properties.items()
        if not k.startswith(_CONSUMER_ONLY) and not k.startswith(_PRODUCER_ONLY)
    }
    return {
        "bootstrap.servers": options.bootstrap_servers,
        "client.id": f"{options.group_id}-admin",
        **shared,
    }


_PROPERTY_IN_MESSAGE = re.compile(r'property:? "([^"]+)"')


def check_client_properties(options: ClientOptions) -> None:
    """Build each client once, unconnected, so invalid properties stop start-up at once.

    librdkafka checks property names and values when a client is created; doing that before
    anything else turns an invalid ``CASEWATCH_KAFKA__*`` property into a ConfigError (exit 2)
    naming the variable, instead of a Kafka failure half-way through start-up.
    """
    offline = {"bootstrap.servers": "", "log_level": 0}
    for build, config in (
        (clients.producer, producer_config(options)),
        (clients.consumer, consumer_config(options)),
    ):
        try:
            client: Any = build({**config, **offline})
        except confluent_kafka.KafkaException as exc:
            raise ConfigError(_property_error(exc, options)) from exc
        if isinstance(client, confluent_kafka.Consumer):
            client.close()


def _property_error(exc: confluent_kafka.KafkaException, options: ClientOptions) -> str:
    text = reason(exc)
    match = _PROPERTY_IN_MESSAGE.search(text)
    if match and match.group(1) in options.properties:
        return f"CASEWATCH_KAFKA__{match.group(1).upper().replace('.', '_')}: {text}"
    return f"Kafka client configuration: {text}"
