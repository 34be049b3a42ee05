"""How the settings are spelt in the environment, and how their errors are reported.

Every setting is ``CASEWATCH_<FIELD NAME IN UPPER CASE>``; any librdkafka property is
``CASEWATCH_KAFKA__<PROPERTY>``, lower-cased with underscores as dots. Values of properties whose
name looks secret are held as ``SecretStr``. A private part of ``casewatch.settings``, which
re-exports what others use, kept apart so the field declarations there read as a reference.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import SettingsError

from casewatch.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

ENV_PREFIX = "CASEWATCH_"
KAFKA_ENV_PREFIX = f"{ENV_PREFIX}KAFKA__"
REDACTED = "**********"
# Fields holding client properties, each set by ``<its variable>__<PROPERTY>``.
_PROPERTY_FIELDS = ("kafka", "schema_registry")

# Substrings of librdkafka and Schema Registry client property names whose values are
# credentials (sasl.password, ssl.key.password, sasl.oauthbearer.client.secret, sasl.jaas.config,
# basic.auth.user.info, bearer.auth.token, ...).
_SECRET_MARKERS = ("password", "secret", "key", "token", "jaas", "credential", "user.info")
_SECRET_PROPERTIES = frozenset({"sasl.oauthbearer.config"})


def env_name(field_name: str) -> str:
    """The environment variable that sets ``field_name``."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def kafka_property(name: str) -> str:
    """The librdkafka property of a pass-through key: ``SASL_MECHANISM`` is ``sasl.mechanism``."""
    return name.strip().lower().replace("_", ".")


def is_secret_property(name: str) -> bool:
    return name in _SECRET_PROPERTIES or any(marker in name for marker in _SECRET_MARKERS)


def reveal(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def kafka_properties(value: dict[Any, Any]) -> dict[str, SecretStr | str]:
    """Pass-through properties by librdkafka name; secret-looking values wrapped in SecretStr."""
    properties: dict[str, SecretStr | str] = {}
    for raw_name, raw in value.items():
        name = kafka_property(str(raw_name))
        if isinstance(raw, SecretStr):
            text = raw.get_secret_value()
        elif isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, str | int | float):
            text = str(raw)
        else:
            raise ValueError(f"property {name!r} must be a string, number or boolean")
        properties[name] = SecretStr(text) if is_secret_property(name) else text
    return properties


def redacted_properties(properties: Mapping[str, SecretStr | str]) -> dict[str, str]:
    return {
        name: REDACTED if isinstance(value, SecretStr) or is_secret_property(name) else value
        for name, value in properties.items()
    }


def _error_location(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return ENV_PREFIX.rstrip("_")
    head = str(loc[0])
    if head in _PROPERTY_FIELDS and len(loc) > 1:
        return f"{env_name(head)}__{str(loc[1]).upper().replace('.', '_')}"
    return env_name(head)


def one_line(error: ValidationError) -> str:
    """A validation error as one line naming each environment variable at fault."""
    parts = []
    for detail in error.errors(include_url=False):
        message = str(detail["msg"]).removeprefix("Value error, ")
        parts.append(f"{_error_location(tuple(detail['loc']))}: {message}")
    return "; ".join(parts).replace("\n", " ")


def load(model: type[Model], overrides: Mapping[str, Any]) -> Model:
    """``model`` read from the environment, ``overrides`` winning; ConfigError as one line."""
    try:
        return model(**overrides)
    except ValidationError as exc:
        raise ConfigError(one_line(exc)) from None
    except SettingsError as exc:
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"{exc}{cause}".replace("\n", " ")) from None


def unknown_names(environ: Mapping[str, str], fields: Collection[str]) -> list[str]:
    """``CASEWATCH_*`` variables in ``environ`` that set none of ``fields``."""
    known = {env_name(name) for name in fields}
    properties = tuple(f"{env_name(name)}__" for name in _PROPERTY_FIELDS if name in fields)
    return sorted(
        name
        for name in (key.upper() for key in environ)
        if name.startswith(ENV_PREFIX) and name not in known and not name.startswith(properties)
    )


def closest_name(variable: str, fields: Collection[str]) -> str | None:
    """The variable of ``fields`` a misspelt ``variable`` most likely meant."""
    known = {env_name(name).removeprefix(ENV_PREFIX): env_name(name) for name in fields}
    # Compared without the shared prefix, which would make every pair look alike.
    close = difflib.get_close_matches(variable.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.8)
    return known[close[0]] if close else None


# -- values as the environment spells them ---------------------------------------------------

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_DISABLED = frozenset({"", "0", "none", "null", "off", "false"})


def names_list(value: Any) -> Any:
    """A JSON list or comma-separated names."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("must be a JSON list or comma-separated names") from None
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def off_is_none(value: Any) -> Any:
    """``off``, ``none``, ``0``, ``false`` or empty switch a duration off."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _DISABLED):
        return None
    return value


def empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def known_log_level(value: Any) -> Any:
    if isinstance(value, str):
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level
    return value


def property_values(value: Any) -> Any:
    return kafka_properties(value) if isinstance(value, dict) else value


def policy_alias(value: Any) -> Any:
    """The score policy as users see it: existing environments may spell it ``every_event``."""
    return "every-event" if value == "every_event" else value
