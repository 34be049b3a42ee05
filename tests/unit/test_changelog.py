"""The changelog must mirror the input's partitions; the legacy shared name is not taken over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from casewatch.errors import ConfigError
from casewatch.settings import Settings
from casewatch.state.changelog import ensure_changelog


@dataclass
class Topic:
    partitions: dict[int, object]
    error: object = None


@dataclass
class Metadata:
    topics: dict[str, Topic] = field(default_factory=dict)


def topic(partitions: int) -> Topic:
    return Topic(dict.fromkeys(range(partitions), object()))


SETTINGS = Settings(input_topic="orders", group_id="live")


def test_a_changelog_with_the_input_partitions_is_used_as_it_is() -> None:
    metadata = Metadata({"orders": topic(4), "live--orders--changelog": topic(4)})
    admin: Any = None  # nothing is created
    ensure_changelog(SETTINGS, admin, metadata, 4, 1.0)


@pytest.mark.parametrize("have", [1, 2, 8])
def test_a_changelog_with_other_partitions_than_the_input_is_refused(have: int) -> None:
    metadata = Metadata({"orders": topic(4), "live--orders--changelog": topic(have)})
    with pytest.raises(ConfigError) as raised:
        ensure_changelog(SETTINGS, None, metadata, 4, 1.0)  # type: ignore[arg-type]
    message = str(raised.value)
    assert f"'live--orders--changelog' has {have} partitions" in message
    assert "'orders' has 4" in message
    assert "CASEWATCH_CHANGELOG_TOPIC" in message


def test_the_legacy_shared_changelog_is_named_in_a_warning_not_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from casewatch.state import changelog

    monkeypatch.setattr(changelog, "_create", lambda settings, admin, partitions, timeout: 4)
    metadata = Metadata({"orders": topic(4), "orders-casewatch-changelog": topic(4)})
    with capture_logs() as logs:
        ensure_changelog(SETTINGS, None, metadata, 4, 1.0)  # type: ignore[arg-type]
    assert [(e["event"], e["legacy_topic"]) for e in logs] == [
        ("legacy_changelog_not_restored", "orders-casewatch-changelog")
    ]
    assert "CASEWATCH_CHANGELOG_TOPIC=orders-casewatch-changelog" in logs[0]["hint"]
