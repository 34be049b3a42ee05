"""The changelog must mirror the input's partitions; the legacy shared name is not taken over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from casewatch.daemon.build import changelog_topic
from casewatch.errors import ConfigError
from casewatch.settings import Settings
from casewatch.state.changelog import ChangelogTopic, ensure_changelog


@dataclass
class Topic:
    partitions: dict[int, object]
    error: object = None


@dataclass
class Metadata:
    topics: dict[str, Topic] = field(default_factory=dict)


def topic(partitions: int) -> Topic:
    return Topic(dict.fromkeys(range(partitions), object()))


CHANGELOG = changelog_topic(Settings(input_topic="orders", group_id="live"))
ADMIN_CONFIG: dict[str, Any] = {"bootstrap.servers": "127.0.0.1:1"}


def test_only_the_default_name_has_a_legacy_predecessor() -> None:
    assert (
        ChangelogTopic("live--orders--changelog", "orders", legacy="orders-casewatch-changelog")
        == CHANGELOG
    )
    named = Settings(input_topic="orders", group_id="live", changelog_topic="state")
    assert changelog_topic(named) == ChangelogTopic("state", "orders", legacy=None)


def test_a_changelog_with_the_input_partitions_is_used_as_it_is() -> None:
    metadata = Metadata({"orders": topic(4), "live--orders--changelog": topic(4)})
    admin: Any = None  # nothing is created
    ensure_changelog(CHANGELOG, ADMIN_CONFIG, admin, metadata, 4, 1.0)


@pytest.mark.parametrize("have", [1, 2, 8])
def test_a_changelog_with_other_partitions_than_the_input_is_refused(have: int) -> None:
    metadata = Metadata({"orders": topic(4), "live--orders--changelog": topic(have)})
    with pytest.raises(ConfigError) as raised:
        ensure_changelog(CHANGELOG, ADMIN_CONFIG, None, metadata, 4, 1.0)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"'live--orders--changelog' has {have} partitions" in message
    assert "'orders' has 4" in message
    assert "CASEWATCH_CHANGELOG_TOPIC" in message


def test_the_legacy_shared_changelog_is_named_in_a_warning_not_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casewatch.state import changelog

    monkeypatch.setattr(changelog, "_create", lambda name, admin, config, partitions, timeout: 4)
    metadata = Metadata({"orders": topic(4), "orders-casewatch-changelog": topic(4)})
    with capture_logs() as logs:
        ensure_changelog(CHANGELOG, ADMIN_CONFIG, None, metadata, 4, 1.0)  # type: ignore[arg-type]
    assert [(e["event"], e["legacy_topic"]) for e in logs] == [
        ("legacy_changelog_not_restored", "orders-casewatch-changelog")
    ]
    assert "CASEWATCH_CHANGELOG_TOPIC=orders-casewatch-changelog" in logs[0]["hint"]
