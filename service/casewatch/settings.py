"""Daemon settings, read from ``CASEWATCH_*`` environment variables.

Every field maps to ``CASEWATCH_<FIELD NAME IN UPPER CASE>``; any librdkafka property passes
through ``CASEWATCH_KAFKA__<PROPERTY>`` to the clients that understand it, overriding casewatch's
own defaults; secret-looking values are never printed (``casewatch._settings_environment``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from casewatch._settings_endpoints import (
    XES_FIELD_NAMES,
    Names,
    NonEmptyStr,
    ScorePolicy,
    SecondsOrOff,
    bundled_model_path,
)
from casewatch._settings_environment import (
    ENV_PREFIX,
    KAFKA_ENV_PREFIX,
    REDACTED,
    closest_name,
    empty_is_none,
    env_name,
    is_secret_property,
    kafka_property,
    known_log_level,
    load,
    policy_alias,
    property_values,
    redacted_properties,
    reveal,
    unknown_names,
)
from casewatch._settings_formats import SCHEMA_REGISTRY_ENV_PREFIX
from casewatch._settings_scoring import ScoringSettings
from casewatch.kafka.config import ClientOptions

# With the environment's spelling of the settings, which others import from here too.
__all__ = ["REDACTED", "XES_FIELD_NAMES", "Settings", "bundled_model_path", "env_name"]
__all__ += ["is_secret_property", "kafka_property", "load_settings", "unknown_env_names"]
__all__ += ["ENV_PREFIX", "KAFKA_ENV_PREFIX", "closest_env_name", "policy_alias"]
__all__ += ["SCHEMA_REGISTRY_ENV_PREFIX"]

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


# str first: a plain property value stays a str, only values already wrapped stay secret.
_PropertyValue = Annotated[str | SecretStr, Field(union_mode="left_to_right")]


class Settings(ScoringSettings):
    """Everything the daemon can be configured with, after the cluster, topics, model, formats,
    alerts, drift, explanations and scoring (the ``_settings_*`` mixins, listed first);
    immutable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        frozen=True,
        extra="ignore",
    )

    contract_path: Annotated[Path | None, BeforeValidator(empty_is_none)] = Field(
        None,
        description="JSON model contract for a scorer whose ONNX metadata carries none.",
    )
    score_policy: ScorePolicy = Field(
        "close",
        description="Score a case when it closes, or after every event it receives "
        "(`every_event` is read as `every-event`).",
    )
    close_field: NonEmptyStr = Field(
        "close", description="Input field holding the boolean close marker."
    )
    end_activities: Names = Field(
        default_factory=list,
        description="Activities that close their case, comma-separated.",
        json_schema_extra={"doc_default": "(none)"},
    )
    field_preset: Literal["default", "xes"] = Field(
        "default",
        description=(
            "Input field-name convention; `xes` reads `case:concept:name`, `concept:name` and "
            "`time:timestamp`. Explicit `*_FIELD` settings still win."
        ),
    )
    case_id_field: NonEmptyStr = Field(
        "case_id",
        description="Input field holding the case id (the Kafka key is used when it is absent).",
    )
    activity_field: NonEmptyStr = Field(
        "activity", description="Input field holding the activity name."
    )
    timestamp_field: NonEmptyStr = Field(
        "timestamp",
        description="Input field holding the event time: epoch seconds or ISO-8601.",
    )
    attributes_field: NonEmptyStr = Field(
        "attributes", description="Input field holding the event's attribute object."
    )
    idle_ttl_seconds: SecondsOrOff = Field(
        3600.0,
        ge=0,
        description=(
            "Score and drop a case once its partition's stream time (Kafka record timestamps) "
            "has moved on this long past its last event; 0 disables."
        ),
    )
    idle_quiet_seconds: Annotated[float | None, BeforeValidator(empty_is_none)] = Field(
        None,
        ge=0,
        description=(
            "How long a partition may deliver no record (in the daemon's running time) before "
            "its stream time follows the running clock, so the cases of a stream that stopped "
            "still time out; 0 keeps them until the partition's next record."
        ),
        json_schema_extra={"doc_default": "the TTL"},
    )
    max_open_cases: int = Field(
        1_000_000,
        gt=0,
        description="Bound on cases held in memory; the least recently active are evicted.",
    )
    max_batch_size: int = Field(2000, gt=0, description="Most messages consumed per batch.")
    max_batch_wait_ms: int = Field(
        100, ge=0, description="Longest wait for a batch to fill, in milliseconds."
    )
    max_message_bytes: int = Field(
        1_048_576, gt=0, description="Input messages larger than this go to the dead-letter topic."
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, description="How often delivered input offsets are committed."
    )
    max_pending_outputs: int = Field(
        200_000,
        gt=0,
        description="Undelivered output records at which consumption pauses (back-pressure).",
    )
    shutdown_timeout_seconds: float = Field(
        10.0, ge=0, description="Time allowed to flush outputs and commit on shutdown."
    )
    metrics_host: str = Field(
        "0.0.0.0", description="Address of the /metrics, /healthz and /readyz HTTP server."
    )
    metrics_port: int = Field(
        9108, ge=0, le=65535, description="Port of the metrics HTTP server; 0 picks a free port."
    )
    log_level: Annotated[str, BeforeValidator(known_log_level)] = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    log_format: Literal["json", "console", "auto"] = Field(
        "auto",
        description=(
            "`json` for log collectors, `console` for humans, `auto` for console on a terminal "
            "and JSON otherwise."
        ),
    )
    intra_op_threads: int = Field(
        1,
        ge=0,
        description="onnxruntime intra-op threads; 0 lets onnxruntime choose.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a consumer group without committed offsets starts."
    )
    offset_out_of_range: Literal["earliest", "latest", "fail"] = Field(
        "earliest",
        description=(
            "What to do when a committed offset is no longer in the partition (retention "
            "deleted it): resume from the earliest or latest offset, or stop with an error."
        ),
    )
    changelog_topic: str | None = Field(
        None,
        description=(
            "Compacted topic holding the open cases' state, one partition per input partition "
            "(default: `<group_id>--<input_topic>--changelog`, one per consumer group)."
        ),
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description=(
            "`exactly_once` writes evaluations, state and input offsets in one Kafka "
            "transaction per checkpoint (needs brokers with transactions)."
        ),
    )
    transactional_id: str | None = Field(
        None,
        description=(
            "Transactional id for `exactly_once`; must be stable per instance so a restarted "
            "instance fences its predecessor (default: `casewatch-<group_id>-<hostname>`)."
        ),
    )
    startup_timeout_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "How long start-up retries, with backoff, a broker it cannot reach or an input topic "
            "that does not exist yet before it exits."
        ),
    )
    restore_batch_size: int = Field(20_000, gt=0, description="Records per restore batch.")

    # Processes: how many daemon loops one container runs (``casewatch.cli.workers``).
    workers: int = Field(1, ge=1, le=64, description="Daemon processes, one group member each.")

    kafka: Annotated[dict[str, _PropertyValue], BeforeValidator(property_values)] = Field(
        default_factory=dict,
        description=(
            "librdkafka properties passed through to both clients: "
            "`CASEWATCH_KAFKA__SASL_MECHANISM` sets `sasl.mechanism` (lower-cased, `_` as `.`)."
        ),
        json_schema_extra={
            "doc_env": f"{KAFKA_ENV_PREFIX}<PROPERTY>",
            "doc_default": "(none)",
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_field_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and str(data.get("field_preset", "")).lower() == "xes":
            data = {**XES_FIELD_NAMES, **data}
        return data

    @model_validator(mode="after")
    def _changelog_is_a_topic_name(self) -> Settings:
        if not _TOPIC_NAME.fullmatch(self.changelog):
            raise ValueError(
                f"changelog topic {self.changelog!r} is not a valid Kafka topic name (letters, "
                "digits, '.', '_', '-', at most 249): set CASEWATCH_CHANGELOG_TOPIC"
            )
        return self

    def client_options(self) -> ClientOptions:
        """What the Kafka client configurations are built from (``casewatch.kafka.config``)."""
        return ClientOptions(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            auto_offset_reset=self.auto_offset_reset,
            max_pending_outputs=self.max_pending_outputs,
            processing_guarantee=self.processing_guarantee,
            transactional_id=self.transactional_id,
            properties=self.pass_through(),
        )

    @property
    def changelog(self) -> str:
        """The state changelog topic: one per consumer group, so groups never share state."""
        return self.changelog_topic or f"{self.group_id}--{self.input_topic}--changelog"

    @property
    def idle_quiet(self) -> float | None:
        """The quiet limit the evaluator uses: the TTL unless set; None when off."""
        if self.idle_quiet_seconds is None:
            return self.idle_ttl_seconds
        return self.idle_quiet_seconds or None

    @property
    def legacy_changelog(self) -> str:
        """The changelog name of earlier releases, shared by every group on the input topic."""
        return f"{self.input_topic}-casewatch-changelog"

    def redacted(self) -> dict[str, Any]:
        """All settings as plain values, safe to log: secret pass-through values are masked."""
        values = self.model_dump(mode="json", exclude={"kafka", "schema_registry"})
        values["kafka"] = redacted_properties(self.kafka)
        values["schema_registry"] = self.redacted_registry()
        values["schema_registry_url"] = self.redacted_registry_url()
        return values

    def pass_through(self) -> dict[str, str]:
        """The ``CASEWATCH_KAFKA__*`` properties with their secrets revealed."""
        return {name: reveal(value) for name, value in self.kafka.items()}


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (keyword arguments win); ConfigError names the variable."""
    return load(Settings, overrides)


def unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    """``CASEWATCH_*`` variables that set nothing, usually misspelt (Kubernetes also injects
    ``CASEWATCH_SERVICE_HOST``-style ones when a Service shares the name, so only a warning)."""
    return unknown_names(environ, Settings.model_fields)


def closest_env_name(variable: str) -> str | None:
    """The setting a misspelt ``variable`` most likely meant, None when nothing is close."""
    return closest_name(variable, Settings.model_fields)
