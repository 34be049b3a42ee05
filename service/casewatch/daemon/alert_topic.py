"""The alert topic at start-up: checked in the cluster's metadata, created when it is missing.

Alerts are keyed by case id and read by consumers that act on each one; nothing is restored from
them, so unlike the changelog any partition count will do. A missing topic is created through
the admin API with the input's partition count (the broker's other defaults: delete, not
compact, since every alert is a record of its own); where the broker cannot (no controller, no
rights) a metadata request auto-creates it with the broker's defaults. Start-up fails with one
line when neither works, rather than the first alert failing its delivery much later.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from casewatch.errors import KafkaFailure
from casewatch.kafka import clients
from casewatch.telemetry.logging import get_logger

log = get_logger(__name__)


def ensure_alert_topic(
    name: str,
    admin_config: dict[str, Any],
    admin: AdminClient,
    metadata: Any,
    partitions: int,
    timeout: float,
) -> int:
    """Make sure the alert topic ``name`` exists; returns its partition count."""
    existing = metadata.topics.get(name)
    if existing is not None and existing.error is None and existing.partitions:
        return len(existing.partitions)
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=-1)],
        operation_timeout=timeout,
    )[name]
    try:
        future.result(timeout=timeout + 2)
        log.info("alert_topic_created", topic=name, partitions=partitions)
    except Exception as exc:  # any failure falls back to auto-creation
        log.warning("alert_topic_admin_create_failed", topic=name, error=str(exc))
    return _auto_created(name, admin_config, timeout)


def _auto_created(topic: str, admin_config: dict[str, Any], timeout: float) -> int:
    producer: Any = clients.producer(admin_config)
    deadline = time.monotonic() + timeout
    while True:
        found = producer.list_topics(topic, timeout=timeout).topics.get(topic)
        # A freshly created topic can report "leader not available" for a moment.
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
        if time.monotonic() > deadline:
            error = "no metadata" if found is None else found.error
            raise KafkaFailure(f"cannot create the alert topic {topic!r}: {error}")
        time.sleep(0.1)
