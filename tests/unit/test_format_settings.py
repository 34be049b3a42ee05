"""Settings of the wire formats and the Schema Registry client."""

from __future__ import annotations

import pytest

from casewatch.errors import ConfigError
from casewatch.settings import REDACTED, Settings, load_settings, unknown_env_names


def test_json_both_ways_is_the_default_and_needs_no_registry() -> None:
    settings = Settings()
    assert (settings.input_format, settings.output_format) == ("json", "json")
    assert not settings.uses_registry
    assert settings.registry_config() == {}


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"input_format": "avro"}, "CASEWATCH_INPUT_FORMAT=avro"),
        ({"input_format": "protobuf"}, "CASEWATCH_INPUT_FORMAT=protobuf"),
        ({"input_format": "json_schema"}, "CASEWATCH_INPUT_FORMAT=json_schema"),
        ({"output_format": "avro"}, "CASEWATCH_OUTPUT_FORMAT=avro"),
        (
            {"input_format": "avro", "output_format": "avro", "schema_registry_url": " "},
            "CASEWATCH_INPUT_FORMAT=avro and CASEWATCH_OUTPUT_FORMAT=avro",
        ),
    ],
)
def test_a_registry_format_without_a_registry_url_is_refused_in_one_line(
    overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    message = str(caught.value)
    assert message.startswith("CASEWATCH_SCHEMA_REGISTRY_URL: must be set for ")
    assert named in message
    assert "\n" not in message


def test_unknown_formats_are_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="CASEWATCH_INPUT_FORMAT"):
        load_settings(input_format="xml")
    with pytest.raises(ConfigError, match="CASEWATCH_OUTPUT_FORMAT"):
        load_settings(output_format="protobuf")


def test_registry_properties_pass_through_and_their_secrets_stay_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASEWATCH_INPUT_FORMAT", "avro")
    monkeypatch.setenv("CASEWATCH_SCHEMA_REGISTRY_URL", "https://registry:8081")
    monkeypatch.setenv("CASEWATCH_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO", "key:s3cret")
    monkeypatch.setenv("CASEWATCH_SCHEMA_REGISTRY__BEARER_AUTH_TOKEN", "t0ken")
    monkeypatch.setenv("CASEWATCH_SCHEMA_REGISTRY__TIMEOUT", "5")
    settings = load_settings()
    assert settings.registry_config() == {
        "url": "https://registry:8081",
        "basic.auth.user.info": "key:s3cret",
        "bearer.auth.token": "t0ken",
        "timeout": "5",
    }
    shown = settings.redacted()
    assert shown["schema_registry"] == {
        "basic.auth.user.info": REDACTED,
        "bearer.auth.token": REDACTED,
        "timeout": "5",
    }
    assert "s3cret" not in repr(settings) and "s3cret" not in str(shown)
    assert "t0ken" not in repr(settings) and "t0ken" not in str(shown)


def test_registry_property_variables_are_not_reported_as_unknown() -> None:
    environ = {
        "CASEWATCH_SCHEMA_REGISTRY__BASIC_AUTH_USER_INFO": "a:b",
        "CASEWATCH_SCHEMA_REGISTRY_URL": "mock://x",
        "CASEWATCH_PROTOBUF_MESSAGE": "my.Event",
        "CASEWATCH_INPUT_FORMATT": "avro",
    }
    assert unknown_env_names(environ) == ["CASEWATCH_INPUT_FORMATT"]


def test_credentials_in_the_registry_url_are_not_shown() -> None:
    settings = load_settings(
        input_format="avro", schema_registry_url="https://key:s3cret@a:8081, http://b:8081"
    )
    assert settings.registry_config()["url"] == "https://key:s3cret@a:8081, http://b:8081"
    shown = settings.redacted()["schema_registry_url"]
    assert shown == f"https://{REDACTED}@a:8081,http://b:8081"
