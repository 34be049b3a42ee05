"""Settings of the case alerts: off by default, k above 1 only where a case is evaluated often."""

from __future__ import annotations

import pytest

from casewatch.daemon.build import load_evaluator, loop_options
from casewatch.errors import ConfigError
from casewatch.settings import Settings, load_settings


def test_alerts_are_off_by_default() -> None:
    settings = Settings()
    assert (settings.alert_topic, settings.alert_after) == (None, 1)
    assert loop_options(settings).alert_topic is None


def test_an_empty_alert_topic_means_no_alerts() -> None:
    assert load_settings(alert_topic="").alert_topic is None


def test_k_above_1_under_the_close_policy_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(alert_topic="alerts", alert_after=3)
    message = str(raised.value)
    assert "CASEWATCH_ALERT_AFTER=3 needs CASEWATCH_SCORE_POLICY=every-event" in message
    assert "\n" not in message


def test_k_above_1_is_accepted_when_scoring_every_event() -> None:
    settings = load_settings(alert_topic="alerts", alert_after=3, score_policy="every_event")
    assert settings.alert_after == 3
    assert loop_options(settings).alert_topic == "alerts"


@pytest.mark.parametrize("alert_after", ["0", "256", "x"])
def test_k_outside_1_to_255_is_refused_naming_the_variable(alert_after: str) -> None:
    with pytest.raises(ConfigError, match=r"^CASEWATCH_ALERT_AFTER: "):
        load_settings(alert_after=alert_after, score_policy="every-event")


def test_an_invalid_topic_name_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^CASEWATCH_ALERT_TOPIC: 'no alerts' is not a valid"):
        load_settings(alert_topic="no alerts")


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"input_topic": "t"}, "CASEWATCH_INPUT_TOPIC"),
        ({"output_topic": "t"}, "CASEWATCH_OUTPUT_TOPIC"),
        ({"dlq_topic": "t"}, "CASEWATCH_DLQ_TOPIC"),
        ({"changelog_topic": "t"}, "CASEWATCH_CHANGELOG_TOPIC"),
    ],
)
def test_the_alert_topic_must_be_a_topic_of_its_own(
    overrides: dict[str, str], variable: str
) -> None:
    with pytest.raises(ConfigError, match=f"CASEWATCH_ALERT_TOPIC=t is also {variable}"):
        load_settings(alert_topic="t", **overrides)


def test_the_evaluator_judges_alerts_only_when_there_is_a_topic_for_them() -> None:
    without_topic = Settings(score_policy="every-event", alert_after=2)
    assert load_evaluator(without_topic)._alerts.alert_after is None
    with_topic = Settings(score_policy="every-event", alert_after=2, alert_topic="alerts")
    assert load_evaluator(with_topic)._alerts.alert_after == 2
