"""The state changelog: a compacted topic with the latest state of every open case.

Keyed by case_id, written to the partition of the same number as the case's input partition,
so the owner of input partition p restores its cases from changelog partition p alone. A state
record's payload carries the offset of the last input event it reflects; a tombstone (a case
that closed, timed out or was evicted) carries that offset in a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from casewatch.errors import ConfigError
from casewatch.kafka.producer import OutputProducer
from casewatch.kafka.topic_creation import create_topic
from casewatch.state.changes import StateChanges
from casewatch.telemetry.logging import get_logger

log = get_logger(__name__)

SOURCE_OFFSET_HEADER = "casewatch.source.offset"


@dataclass(frozen=True)
class ChangelogTopic:
    """The changelog of one consumer group's ``input_topic``; ``legacy`` is the name earlier
    releases gave it, None when the topic is named explicitly."""

    name: str
    input_topic: str
    legacy: str | None = None


class _ChangeSource(Protocol):
    def take_state_changes(self) -> StateChanges: ...


def write_changes(topic: str, source: _ChangeSource, outputs: OutputProducer) -> int:
    """Queue tombstones, then states, of everything changed since the last call."""
    changes = source.take_state_changes()
    produce = outputs.produce
    for case_id, partition, offset in changes.departed:
        headers = [(SOURCE_OFFSET_HEADER, str(offset).encode())]
        produce(topic, case_id.encode(), None, headers, partition)
    states = changes.states
    outputs.produce_many(
        topic,
        [case_id.encode() for case_id, _, _ in states],
        [state for _, _, state in states],
        [partition for _, partition, _ in states],
    )
    return len(changes)


def ensure_changelog(
    changelog: ChangelogTopic,
    admin_config: dict[str, Any],
    admin: AdminClient,
    metadata: Any,
    partitions: int,
    timeout: float,
) -> None:
    """Make sure the changelog exists with exactly the input's ``partitions``.

    Created compacted through the admin API; where the broker cannot (no controller, no rights)
    a metadata request with ``admin_config`` auto-creates it with the broker's defaults instead.
    Raises ConfigError when its partition count differs from the input's: the cases of input
    partition p are restored from changelog partition p, so any other count would restore the
    wrong cases.
    """
    name = changelog.name
    existing = metadata.topics.get(name)
    if existing is not None and existing.error is None:
        have = len(existing.partitions)
    else:
        _note_legacy(changelog, metadata)
        have = _create(name, admin, admin_config, partitions, timeout)
    if have != partitions:
        raise ConfigError(
            f"changelog topic {name!r} has {have} partitions but input topic "
            f"{changelog.input_topic!r} has {partitions}: recreate the changelog with "
            f"{partitions} partitions, or set CASEWATCH_CHANGELOG_TOPIC to a new topic"
        )


def _note_legacy(changelog: ChangelogTopic, metadata: Any) -> None:
    # Earlier releases named the changelog after the input topic only, so every group on the
    # topic shared it. Its records cannot be told apart by group, so they are not taken over.
    legacy = changelog.legacy
    if legacy is not None and legacy in metadata.topics:
        log.warning(
            "legacy_changelog_not_restored",
            legacy_topic=legacy,
            changelog_topic=changelog.name,
            hint=f"set CASEWATCH_CHANGELOG_TOPIC={legacy} to keep restoring from it",
        )


def _create(
    name: str, admin: AdminClient, admin_config: dict[str, Any], partitions: int, timeout: float
) -> int:
    topic = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=-1,
        config={"cleanup.policy": "compact"},
    )
    return create_topic(admin, admin_config, topic, timeout, role="changelog", compacted=True)
