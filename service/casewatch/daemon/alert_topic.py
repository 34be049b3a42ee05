"""The alert topic at start-up: checked in the cluster's metadata, created when it is missing.

Alerts are keyed by case id and read by consumers that act on each one; nothing is restored from
them, so unlike the changelog any partition count will do. A missing topic is created with the
input's partition count and the broker's other defaults (delete, not compact, since every alert
is a record of its own), see ``casewatch.kafka.topic_creation``.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from casewatch.kafka.topic_creation import create_topic


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
    topic = NewTopic(name, num_partitions=partitions, replication_factor=-1)
    return create_topic(admin, admin_config, topic, timeout, role="alert_topic")
