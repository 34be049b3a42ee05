"""How input events and output evaluations are encoded on the wire, and which Schema Registry
holds their schemas.

``json`` (the default) needs no registry. ``avro``, ``protobuf`` and ``json_schema`` input, and
``avro`` output, use Confluent's serdes and a Schema Registry: its URL in
``CASEWATCH_SCHEMA_REGISTRY_URL``, any client property through
``CASEWATCH_SCHEMA_REGISTRY__<PROPERTY>`` (``BASIC_AUTH_USER_INFO`` is ``basic.auth.user.info``),
spelt like the librdkafka pass-through. A private part of ``casewatch.settings``.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator

from casewatch._settings_endpoints import EndpointSettings
from casewatch._settings_environment import (
    ENV_PREFIX,
    REDACTED,
    empty_is_none,
    property_values,
    redacted_properties,
    reveal,
)

SCHEMA_REGISTRY_ENV_PREFIX = f"{ENV_PREFIX}SCHEMA_REGISTRY__"

InputFormat = Literal["json", "avro", "protobuf", "json_schema"]
OutputFormat = Literal["json", "avro"]

# str first: a plain property value stays a str, only values already wrapped stay secret.
_PropertyValue = Annotated[str | SecretStr, Field(union_mode="left_to_right")]


class FormatSettings(EndpointSettings):
    """Wire formats of the input and output topics, after the endpoints they apply to."""

    input_format: InputFormat = Field(
        "json",
        description=(
            "Encoding of input events: `json`, or `avro`, `protobuf`, `json_schema` written with "
            "a Schema Registry serializer (needs `CASEWATCH_SCHEMA_REGISTRY_URL`)."
        ),
    )
    output_format: OutputFormat = Field(
        "json",
        description=(
            "Encoding of evaluations: `json`, or `avro` with the bundled `evaluation.avsc` "
            "registered as `<output topic>-value`."
        ),
    )
    schema_registry_url: Annotated[str | None, BeforeValidator(empty_is_none)] = Field(
        None,
        description=(
            "Schema Registry URL(s), comma-separated; `mock://<scope>` is an in-process registry "
            "for tests."
        ),
        validate_default=True,
    )
    protobuf_message: Annotated[str | None, BeforeValidator(empty_is_none)] = Field(
        None,
        description=(
            "Protobuf input message: a generated class as `package.module:Message`, or a message "
            "name in the input topic's latest registered schema; by default that schema's first "
            "message."
        ),
        json_schema_extra={"doc_default": "first message of `<input topic>-value`"},
    )
    schema_registry: Annotated[dict[str, _PropertyValue], BeforeValidator(property_values)] = Field(
        default_factory=dict,
        description=(
            "Schema Registry client properties: `CASEWATCH_SCHEMA_REGISTRY__BASIC_AUTH_USER_"
            "INFO` sets `basic.auth.user.info` (lower-cased, `_` as `.`)."
        ),
        json_schema_extra={
            "doc_env": f"{SCHEMA_REGISTRY_ENV_PREFIX}<PROPERTY>",
            "doc_default": "(none)",
        },
    )

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_formats_have_a_registry(cls, url: str | None, info: ValidationInfo) -> str | None:
        # Declared after both formats, so both are in ``info.data`` when they are valid.
        formats = {name: info.data.get(name, "json") for name in ("input_format", "output_format")}
        users = [
            f"CASEWATCH_{name.upper()}={value}"
            for name, value in formats.items()
            if value != "json"
        ]
        if url is None and users:
            raise ValueError(f"must be set for {' and '.join(users)}")
        return url

    @property
    def uses_registry(self) -> bool:
        return self.input_format != "json" or self.output_format != "json"

    def registry_config(self) -> dict[str, str]:
        """The Schema Registry client configuration, secrets revealed (never printed)."""
        config = {name: reveal(value) for name, value in self.schema_registry.items()}
        if self.schema_registry_url is not None:
            config["url"] = self.schema_registry_url
        return config

    def redacted_registry(self) -> dict[str, str]:
        return redacted_properties(self.schema_registry)

    def redacted_registry_url(self) -> str | None:
        """The URL(s) with any ``user:password@`` replaced, safe to log."""
        if self.schema_registry_url is None:
            return None
        return ",".join(_without_userinfo(url) for url in self.schema_registry_url.split(","))


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url.strip())
    if "@" not in parts.netloc:
        return url.strip()
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))
