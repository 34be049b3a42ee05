"""The Schema Registry client, shared by every serializer of the process.

One client per registry configuration: the input decoder, the Avro output encoder and a test
that registers schemas all see one schema cache. That is also what makes the in-process
``mock://`` registry usable at all, since each mock client otherwise keeps its own store.

Registry and serdes errors are converted here: a bad URL or property is a ConfigError, a registry
that does not answer at start-up a SchemaRegistryFailure, both one line naming the cause.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Final

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from casewatch.errors import CasewatchError, ConfigError

EVALUATION_AVRO: Final = "evaluation.avsc"
EVENT_AVRO: Final = "event.avsc"
EVENT_JSON_SCHEMA: Final = "event.schema.json"
_DETAIL_CHARS: Final = 200
# Client properties that are numbers; every other one is text.
_NUMERIC: Final = frozenset(
    {
        "timeout",
        "cache.capacity",
        "cache.latest.ttl.sec",
        "max.retries",
        "retries.wait.ms",
        "retries.max.wait.ms",
    }
)
_FRACTIONAL: Final = frozenset({"timeout", "cache.latest.ttl.sec"})
_clients: dict[tuple[tuple[str, str], ...], Any] = {}
_lock = threading.Lock()


class SchemaRegistryFailure(CasewatchError):
    """The Schema Registry cannot be used: unreachable, refusing our credentials, or erring."""


def value_subject(topic: str) -> str:
    """The subject of a topic's values under the default TopicNameStrategy."""
    return f"{topic}-value"


def schema_text(name: str) -> str:
    """The text of a schema file bundled in ``casewatch/schemas/``."""
    files = importlib.resources.files("casewatch") / "schemas" / name
    return files.read_text(encoding="utf-8")


def one_line(exc: BaseException) -> str:
    """An exception as a short line: its type and its text with whitespace collapsed."""
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"[:_DETAIL_CHARS]


def _typed(config: Mapping[str, str]) -> dict[str, Any]:
    """``config`` with the values the client wants as numbers (the environment has only text)."""
    typed: dict[str, Any] = dict(config)
    for name in _NUMERIC.intersection(typed):
        text = typed[name]
        try:
            typed[name] = float(text) if name in _FRACTIONAL else int(text)
        except ValueError:
            variable = f"CASEWATCH_SCHEMA_REGISTRY__{name.upper().replace('.', '_')}"
            raise ConfigError(f"{variable}: must be a number, got {text!r}") from None
    return typed


def registry_client(config: Mapping[str, str]) -> Any:
    """The process's client for the registry ``config`` describes (``url`` plus properties)."""
    key = tuple(sorted(config.items()))
    with _lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = SchemaRegistryClient.new_client(_typed(config))
            except (ValueError, TypeError) as exc:
                # The client names the property at fault; its values may be secret, so only
                # the message is kept, never the configuration.
                raise ConfigError(f"CASEWATCH_SCHEMA_REGISTRY_*: {one_line(exc)}") from None
            _clients[key] = client
        return client


@contextlib.contextmanager
def registry_errors(doing: str) -> Iterator[None]:
    """Turn whatever the registry client raises into SchemaRegistryFailure, one line."""
    try:
        yield
    except CasewatchError:
        raise
    except SchemaRegistryError as exc:
        raise SchemaRegistryFailure(
            f"{doing}: the Schema Registry answered {exc.http_status_code}: "
            f"{' '.join(str(exc.error_message).split())}"[:_DETAIL_CHARS]
        ) from None
    except Exception as exc:  # connection, TLS and timeout errors come from the HTTP client
        raise SchemaRegistryFailure(f"{doing}: {one_line(exc)}") from None


def check_reachable(client: Any) -> None:
    """Fail start-up with one line when the registry does not answer (or refuses us)."""
    with registry_errors("cannot reach the Schema Registry"):
        client.get_subjects()


__all__ = [
    "EVALUATION_AVRO",
    "EVENT_AVRO",
    "EVENT_JSON_SCHEMA",
    "SchemaRegistryFailure",
    "check_reachable",
    "one_line",
    "registry_client",
    "registry_errors",
    "schema_text",
    "value_subject",
]
