"""Case alerts: an optional topic with one record when a case is first judged anomalous.

``CASEWATCH_ALERT_TOPIC`` unset means no alerts. ``CASEWATCH_ALERT_AFTER`` is k: a case alerts
after k consecutive anomalous evaluations (``casewatch.scoring.alerts``). Under the close policy
a case is evaluated exactly once, so a k above 1 could never be reached and would switch the
alerts off without a word: it is refused at start-up instead. A private part of
``casewatch.settings``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from casewatch._settings_environment import empty_is_none
from casewatch._settings_formats import FormatSettings
from casewatch.state.columns import STREAK_MAX

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


class AlertSettings(FormatSettings):
    """The alert topic and how many anomalous evaluations in a row raise an alert."""

    alert_topic: Annotated[str | None, BeforeValidator(empty_is_none)] = Field(
        None,
        description=(
            "Topic of case alerts: one `opened` record when a case is first judged anomalous, a "
            "`closed` update when that case leaves memory; keyed by case id, JSON (Avro when the "
            "evaluations are)."
        ),
        json_schema_extra={"doc_default": "(none: no alerts)"},
    )
    alert_after: int = Field(
        1,
        ge=1,
        le=STREAK_MAX,
        description=(
            "Consecutive anomalous evaluations of a case that raise its alert; above 1 needs the "
            "`every-event` score policy."
        ),
    )

    @field_validator("alert_topic")
    @classmethod
    def _alert_topic_is_a_topic_name(cls, topic: str | None) -> str | None:
        if topic is not None and not _TOPIC_NAME.fullmatch(topic):
            raise ValueError(
                f"{topic!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-', at "
                "most 249)"
            )
        return topic

    @model_validator(mode="after")
    def _alerts_are_reachable(self) -> AlertSettings:
        # Runs on the complete settings model, where the score policy and the changelog live.
        policy = getattr(self, "score_policy", "close")
        if self.alert_after > 1 and policy == "close":
            raise ValueError(
                f"CASEWATCH_ALERT_AFTER={self.alert_after} needs CASEWATCH_SCORE_POLICY="
                "every-event: under the close policy a case is evaluated once, so it could never "
                "alert"
            )
        if self.alert_topic is not None:
            _differs_from_the_other_topics(self.alert_topic, self._other_topics())
        return self

    def _other_topics(self) -> dict[str, Any]:
        return {
            "CASEWATCH_INPUT_TOPIC": self.input_topic,
            "CASEWATCH_OUTPUT_TOPIC": self.output_topic,
            "CASEWATCH_DLQ_TOPIC": self.dlq_topic,
            "CASEWATCH_CHANGELOG_TOPIC": getattr(self, "changelog", None),
        }


def _differs_from_the_other_topics(topic: str, others: dict[str, Any]) -> None:
    for variable, other in others.items():
        if topic == other:
            raise ValueError(
                f"CASEWATCH_ALERT_TOPIC={topic} is also {variable}: alerts need a topic of their "
                "own"
            )
