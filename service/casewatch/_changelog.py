"""The state changelog: a compacted topic with the latest state of every open case.

Keyed by case_id, written to the partition of the same number as the case's input partition,
so the owner of input partition p restores its cases from changelog partition p alone. A state
record's payload carries the offset of the last input event it reflects; a tombstone (a case
that closed, timed out or was evicted) carries that offset in a header.
"""

from __future__ import annotations

from typing import Protocol

import confluent_kafka
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from casewatch._changes import StateChanges
from casewatch._kafka_config import admin_config
from casewatch._logging import get_logger
from casewatch._outputs import OutputProducer
from casewatch._settings import Settings

log = get_logger(__name__)

SOURCE_OFFSET_HEADER = "casewatch.source.offset"
_ADMIN_TIMEOUT = 5.0


class _ChangeSource(Protocol):
    def take_state_changes(self) -> StateChanges: ...


def write_changes(topic: str, source: _ChangeSource, outputs: OutputProducer) -> int:
    """Queue tombstones, then states, of everything changed since the last call."""
    changes = source.take_state_changes()
    produce = outputs.produce
    for case_id, partition, offset in changes.departed:
        headers = [(SOURCE_OFFSET_HEADER, str(offset).encode())]
        produce(topic, case_id.encode(), None, headers, partition)
    for case_id, partition, state in changes.states:
        produce(topic, case_id.encode(), state, None, partition)
    return len(changes)


def ensure_changelog(settings: Settings) -> int:
    """Make sure the changelog exists with at least the input's partitions; returns its count.

    Created compacted through the admin API; where the broker cannot (no controller, no rights)
    a metadata request auto-creates it with the broker's defaults instead.
    """
    input_topic, changelog = settings.input_topic, settings.changelog
    admin = AdminClient(admin_config(settings))
    metadata = admin.list_topics(timeout=_ADMIN_TIMEOUT)
    inputs = metadata.topics.get(input_topic)
    wanted = len(inputs.partitions) if inputs is not None and inputs.partitions else 1
    existing = metadata.topics.get(changelog)
    if existing is not None and existing.error is None:
        have = len(existing.partitions)
        if have < wanted:
            log.warning("changelog_too_few_partitions", topic=changelog, have=have, want=wanted)
        return have
    topic = NewTopic(
        changelog,
        num_partitions=wanted,
        replication_factor=-1,
        config={"cleanup.policy": "compact"},
    )
    future = admin.create_topics([topic], operation_timeout=_ADMIN_TIMEOUT)[changelog]
    try:
        future.result(timeout=_ADMIN_TIMEOUT + 2)
        log.info("changelog_created", topic=changelog, partitions=wanted, compacted=True)
    except Exception as exc:  # any failure falls back to auto-creation
        log.warning("changelog_admin_create_failed", topic=changelog, error=str(exc))
        producer = confluent_kafka.Producer(admin_config(settings))
        producer.list_topics(changelog, timeout=_ADMIN_TIMEOUT)
    return wanted
