"""Start-up says what is wrong: misspelt settings, invalid client properties, no broker."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from casewatch.daemon.build import changelog_topic
from casewatch.daemon.startup import prepare_topics, warn_unknown_env
from casewatch.errors import ConfigError, KafkaFailure
from casewatch.kafka.config import admin_config, check_client_properties
from casewatch.settings import Settings


def unreachable(**waits: Any) -> int | None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", startup_timeout_seconds=1.5)
    return prepare_topics(
        settings.input_topic,
        changelog_topic(settings),
        admin_config(settings.client_options()),
        timeout=settings.startup_timeout_seconds,
        **waits,
    )


def test_an_unknown_setting_is_warned_about_with_the_closest_known_name() -> None:
    environ = {
        "CASEWATCH_SCORE_POLCY": "every_event",
        "CASEWATCH_PORT_9108_TCP_ADDR": "10.0.0.1",
        "CASEWATCH_SCORE_POLICY": "close",
        "CASEWATCH_KAFKA__SASL_MECHANISM": "PLAIN",
        "PATH": "/bin",
    }
    with capture_logs() as logs:
        unknown = warn_unknown_env(environ)
    assert unknown == ["CASEWATCH_PORT_9108_TCP_ADDR", "CASEWATCH_SCORE_POLCY"]
    warned = {entry["variable"]: entry["closest"] for entry in logs}
    assert warned == {
        "CASEWATCH_SCORE_POLCY": "CASEWATCH_SCORE_POLICY",
        "CASEWATCH_PORT_9108_TCP_ADDR": None,
    }
    assert {entry["event"] for entry in logs} == {"unknown_setting"}


@pytest.mark.parametrize(
    ("properties", "named"),
    [
        ({"foo.bar": "1"}, "CASEWATCH_KAFKA__FOO_BAR"),
        ({"security.protocol": "nope"}, "CASEWATCH_KAFKA__SECURITY_PROTOCOL"),
    ],
)
def test_an_invalid_client_property_is_a_configuration_error_naming_it(
    properties: dict[str, str], named: str
) -> None:
    settings = Settings(kafka=properties)
    with pytest.raises(ConfigError, match=named) as raised:
        check_client_properties(settings.client_options())
    assert "\n" not in str(raised.value)


def test_valid_client_properties_pass() -> None:
    settings = Settings(kafka={"linger.ms": "20", "session.timeout.ms": "6000"})
    check_client_properties(settings.client_options())


def test_an_unreachable_broker_is_retried_with_backoff_then_fails_with_its_cause() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    with capture_logs() as logs, pytest.raises(KafkaFailure) as raised:
        unreachable(sleep=sleep, clock=lambda: now[0])
    assert sum(waits) == pytest.approx(1.5)  # 0.5, then 1.0: doubling, cut at the bound
    message = str(raised.value)
    assert "cannot reach the brokers 127.0.0.1:1" in message
    assert "after 3 attempts" in message
    assert "Connection refused" in message
    retries = [entry for entry in logs if entry["event"] == "startup_waiting"]
    assert [entry["attempt"] for entry in retries] == [1, 2]
    assert all("Connection refused" in entry["cause"] for entry in retries)


def test_a_stop_requested_while_waiting_for_the_broker_ends_start_up_cleanly() -> None:
    stop = [False]

    def sleep(seconds: float) -> None:
        stop[0] = True

    assert unreachable(stopping=lambda: stop[0], sleep=sleep) is None
