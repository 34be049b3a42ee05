"""Creating a topic casewatch writes to at start-up, with a fallback where the admin API fails.

The admin API is tried first, since only it sets the partition count and the topic's config;
where the broker refuses it (no controller, no rights) a metadata request auto-creates the topic
with the broker's defaults. Start-up fails with one line when neither works, rather than the
first record failing its delivery much later.
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


def create_topic(
    admin: AdminClient,
    admin_config: dict[str, Any],
    topic: NewTopic,
    timeout: float,
    *,
    role: str,
    **logged: Any,
) -> int:
    """Create ``topic``; returns its partition count. ``role`` names it in the log events
    (``<role>_created``, ``<role>_admin_create_failed``) and in the error."""
    name = topic.topic
    future = admin.create_topics([topic], operation_timeout=timeout)[name]
    try:
        future.result(timeout=timeout + 2)
        log.info(f"{role}_created", topic=name, partitions=topic.num_partitions, **logged)
    except Exception as exc:  # any failure falls back to auto-creation
        log.warning(f"{role}_admin_create_failed", topic=name, error=str(exc))
    return partition_count(name, admin_config, timeout, role=role)


def partition_count(topic: str, admin_config: dict[str, Any], timeout: float, *, role: str) -> int:
    """Partitions of ``topic``, auto-created by the metadata request if it does not exist."""
    producer: Any = clients.producer(admin_config)
    deadline = time.monotonic() + timeout
    while True:
        found = producer.list_topics(topic, timeout=timeout).topics.get(topic)
        # A freshly created topic can report "leader not available" for a moment.
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
        if time.monotonic() > deadline:
            error = "no metadata" if found is None else found.error
            raise KafkaFailure(f"cannot create the {role.replace('_', ' ')} {topic!r}: {error}")
        time.sleep(0.1)
