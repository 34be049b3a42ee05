from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from casewatch.errors import ConfigError
from casewatch.kafka.config import consumer_config, producer_config
from casewatch.settings import REDACTED, Settings, env_name, load_settings, unknown_env_names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CASEWATCH_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.bootstrap_servers == "localhost:9092"
    assert settings.input_topic == "casewatch-events"
    assert settings.output_topic == "casewatch-evaluations"
    assert settings.dlq_topic == "casewatch-dlq"
    assert settings.score_policy == "close"
    assert settings.idle_ttl_seconds == 3600
    assert settings.metrics_port == 9108
    assert settings.end_activities == []
    assert settings.kafka == {}
    assert settings.model_path.parts[-3:] == ("casewatch", "models", "reference.onnx")


def test_every_field_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("CASEWATCH_MAX_BATCH_SIZE", "500")
    monkeypatch.setenv("CASEWATCH_SCORE_POLICY", "every_event")
    monkeypatch.setenv("CASEWATCH_MODEL_PATH", "/app/models/reference.onnx")
    monkeypatch.setenv("CASEWATCH_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.max_batch_size == 500
    assert settings.score_policy == "every-event"
    assert settings.model_path == Path("/app/models/reference.onnx")
    assert settings.log_level == "DEBUG"
    assert env_name("max_batch_size") == "CASEWATCH_MAX_BATCH_SIZE"


def test_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_GROUP_ID", "from-env")
    assert load_settings(group_id="explicit").group_id == "explicit"


def test_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.group_id = "other"  # type: ignore[misc]


def test_kafka_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CASEWATCH_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert settings.kafka["sasl.mechanism"] == "PLAIN"
    assert isinstance(settings.kafka["sasl.password"], SecretStr)
    for config in (
        consumer_config(settings.client_options()),
        producer_config(settings.client_options()),
    ):
        assert config["sasl.mechanism"] == "PLAIN"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.username"] == "svc"
        assert config["sasl.password"] == "hunter2"


def test_pass_through_overrides_defaults() -> None:
    settings = load_settings(kafka={"linger.ms": 50, "enable_idempotence": False})
    producer = producer_config(settings.client_options())
    assert producer["linger.ms"] == "50"
    assert producer["enable.idempotence"] == "false"


def test_client_defaults() -> None:
    settings = load_settings(group_id="g", bootstrap_servers="b:1", max_pending_outputs=1234)
    consumer = consumer_config(settings.client_options())
    assert consumer["bootstrap.servers"] == "b:1"
    assert consumer["group.id"] == "g"
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert consumer["auto.offset.reset"] == "earliest"
    producer = producer_config(settings.client_options())
    assert producer["bootstrap.servers"] == "b:1"
    assert producer["acks"] == "all"
    assert producer["enable.idempotence"] is True
    assert producer["linger.ms"] == 2
    assert producer["compression.type"] in {"lz4", "zstd"}
    assert producer["queue.buffering.max.messages"] == 1234


def test_secrets_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("CASEWATCH_KAFKA__SSL_KEY_PASSWORD", "keypass")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_OAUTHBEARER_CLIENT_SECRET", "oauth")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_JAAS_CONFIG", "jaas")
    monkeypatch.setenv("CASEWATCH_KAFKA__SASL_USERNAME", "svc")
    settings = load_settings()
    for text in (repr(settings), str(settings), str(settings.redacted())):
        for secret in ("hunter2", "keypass", "oauth", "jaas"):
            assert f"'{secret}'" not in text
    kafka = settings.redacted()["kafka"]
    assert kafka["sasl.password"] == REDACTED
    assert kafka["ssl.key.password"] == REDACTED
    assert kafka["sasl.oauthbearer.client.secret"] == REDACTED
    assert kafka["sasl.jaas.config"] == REDACTED
    assert kafka["sasl.username"] == "svc"


def test_redacted_is_plain_data() -> None:
    values = load_settings().redacted()
    assert set(values) == set(Settings.model_fields)
    assert isinstance(values["model_path"], str)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (
            "CASEWATCH_MAX_BATCH_SIZE",
            "0",
            "CASEWATCH_MAX_BATCH_SIZE: Input should be greater than 0",
        ),
        ("CASEWATCH_METRICS_PORT", "70000", "CASEWATCH_METRICS_PORT: Input should be less than"),
        (
            "CASEWATCH_METRICS_PORT",
            "http",
            "CASEWATCH_METRICS_PORT: Input should be a valid integer",
        ),
        ("CASEWATCH_SCORE_POLICY", "sometimes", "CASEWATCH_SCORE_POLICY: Input should be"),
        ("CASEWATCH_LOG_LEVEL", "loud", "CASEWATCH_LOG_LEVEL: must be one of"),
        ("CASEWATCH_COMMIT_INTERVAL_SECONDS", "-1", "CASEWATCH_COMMIT_INTERVAL_SECONDS: Input"),
        ("CASEWATCH_IDLE_TTL_SECONDS", "-5", "CASEWATCH_IDLE_TTL_SECONDS: Input should be"),
    ],
)
def test_invalid_is_one_line_config_error(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(message)


def test_invalid_override_names_env_var() -> None:
    with pytest.raises(ConfigError, match=r"^CASEWATCH_MAX_BATCH_SIZE: Input should be greater"):
        load_settings(max_batch_size=0)


def test_malformed_json_env_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_KAFKA", "{not json")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_xes_preset() -> None:
    settings = load_settings(field_preset="xes")
    assert settings.case_id_field == "case:concept:name"
    assert settings.activity_field == "concept:name"
    assert settings.timestamp_field == "time:timestamp"
    assert settings.attributes_field == "attributes"


def test_xes_preset_keeps_explicit_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_FIELD_PRESET", "xes")
    monkeypatch.setenv("CASEWATCH_ACTIVITY_FIELD", "lifecycle:activity")
    settings = load_settings()
    assert settings.case_id_field == "case:concept:name"
    assert settings.activity_field == "lifecycle:activity"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Pay, Archive ,Cancel", ["Pay", "Archive", "Cancel"]),
        ('["Pay", "Archive"]', ["Pay", "Archive"]),
        ("", []),
        ("Pay", ["Pay"]),
    ],
)
def test_end_activities_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CASEWATCH_END_ACTIVITIES", value)
    assert load_settings().end_activities == expected


@pytest.mark.parametrize("value", ["0", "none", ""])
def test_idle_ttl_can_be_disabled(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CASEWATCH_IDLE_TTL_SECONDS", value)
    assert load_settings().idle_ttl_seconds is None


def test_empty_contract_path_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_CONTRACT_PATH", "")
    assert load_settings().contract_path is None


def test_unknown_env_names() -> None:
    environ = {
        "CASEWATCH_MAX_BATCH": "10",
        "CASEWATCH_MAX_BATCH_SIZE": "10",
        "CASEWATCH_KAFKA__SASL_MECHANISM": "PLAIN",
        "casewatch_group_id": "g",
        "PATH": "/bin",
    }
    assert unknown_env_names(environ) == ["CASEWATCH_MAX_BATCH"]


def test_idle_quiet_follows_the_ttl_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_IDLE_TTL_SECONDS", "120")
    assert load_settings().idle_quiet == 120
    monkeypatch.setenv("CASEWATCH_IDLE_QUIET_SECONDS", "")
    assert load_settings().idle_quiet == 120
    monkeypatch.setenv("CASEWATCH_IDLE_QUIET_SECONDS", "0")
    assert load_settings().idle_quiet is None
    monkeypatch.setenv("CASEWATCH_IDLE_QUIET_SECONDS", "30")
    assert load_settings().idle_quiet == 30


def test_the_changelog_is_named_per_consumer_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_INPUT_TOPIC", "orders")
    monkeypatch.setenv("CASEWATCH_GROUP_ID", "shadow")
    settings = load_settings()
    assert settings.changelog == "shadow--orders--changelog"
    assert settings.legacy_changelog == "orders-casewatch-changelog"
    monkeypatch.setenv("CASEWATCH_CHANGELOG_TOPIC", "kept")
    assert load_settings().changelog == "kept"


def test_a_group_id_that_makes_no_topic_name_asks_for_a_changelog_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASEWATCH_GROUP_ID", "team a/orders")
    with pytest.raises(ConfigError, match="CASEWATCH_CHANGELOG_TOPIC"):
        load_settings()
    monkeypatch.setenv("CASEWATCH_CHANGELOG_TOPIC", "team-a-orders-changelog")
    assert load_settings().changelog == "team-a-orders-changelog"
