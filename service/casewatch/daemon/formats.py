"""Input events written with a Schema Registry serializer: Avro, Protobuf or JSON Schema.

Confluent's deserializer turns the value into a record (a dict, or a Protobuf message made one
by ``casewatch.kafka.protobuf_messages``); the record then takes the JSON decoder's generic pass,
so field names, the key fallback, timestamps and attributes map exactly as for JSON and nothing
downstream knows the difference. A value the deserializer refuses (wrong magic byte, unknown
schema id, truncated or corrupt payload) is an InvalidEventError whose reason names the format
(``not_avro``, ``not_protobuf``, ``not_json_schema``), so it goes to the dead-letter topic like
a bad JSON event and the loop goes on.

``json`` input does not come through here: it keeps the plain ``EventDecoder``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.daemon.decode import (
    EMPTY,
    MAX_NESTING,
    NOT_AN_OBJECT,
    OVERSIZED,
    TOO_DEEP,
    EventDecoder,
    FieldNames,
    _nested_too_deep,
    invalid_from,
)
from casewatch.errors import ConfigError, InvalidEventError
from casewatch.events import StreamingEvent
from casewatch.kafka.protobuf_messages import input_message_class, message_to_dict
from casewatch.kafka.registry import one_line, value_subject

NOT_AVRO: Final = "not_avro"
NOT_PROTOBUF: Final = "not_protobuf"
NOT_JSON_SCHEMA: Final = "not_json_schema"
# Dead-letter reasons beyond the JSON decoder's (``casewatch.daemon.decode.INVALID_REASONS``).
REGISTRY_REASONS: Final = (NOT_AVRO, NOT_PROTOBUF, NOT_JSON_SCHEMA)
_REASONS: Final = {"avro": NOT_AVRO, "protobuf": NOT_PROTOBUF, "json_schema": NOT_JSON_SCHEMA}
_NAMES: Final = {"avro": "Avro", "protobuf": "Protobuf", "json_schema": "JSON Schema"}
# The Protobuf wire format of today's serializers; the deprecated one is refused.
_PROTOBUF_CONFIG: Final = {"use.deprecated.format": False}

Deserialize = Callable[[bytes, SerializationContext], Any]


def registry_deserializer(
    input_format: str, client: Any, topic: str, protobuf_message: str | None = None
) -> tuple[Deserialize, Callable[[Any], Any]]:
    """The serdes deserializer of ``input_format`` and what turns its result into a record.

    The writer's schema is looked up by the id each value carries (cached by the client).
    """
    if input_format == "avro":
        return AvroDeserializer(client), _same
    if input_format == "json_schema":
        # No reader schema: each value is validated against the schema it was written with.
        return JSONDeserializer(None, schema_registry_client=client), _same
    if input_format == "protobuf":
        message = input_message_class(protobuf_message, client, value_subject(topic))
        deserializer = ProtobufDeserializer(
            message, _PROTOBUF_CONFIG, schema_registry_client=client
        )
        return deserializer, message_to_dict
    raise ConfigError(f"CASEWATCH_INPUT_FORMAT: {input_format!r} is not a registry format")


def _same(record: Any) -> Any:
    return record


class RegistryEventDecoder(EventDecoder):
    """Decodes values written by a Schema Registry serializer; one per consumer, reused."""

    def __init__(
        self,
        input_format: str,
        deserialize: Deserialize,
        to_record: Callable[[Any], Any],
        topic: str,
        fields: FieldNames,
        *,
        max_message_bytes: int = 1_048_576,
    ) -> None:
        super().__init__(fields, max_message_bytes=max_message_bytes)
        if input_format not in _REASONS:
            raise ConfigError(f"CASEWATCH_INPUT_FORMAT: {input_format!r} is not a registry format")
        self.input_format = input_format
        self._reason = _REASONS[input_format]
        self._name = _NAMES[input_format]
        self._deserialize = deserialize
        self._to_record = to_record
        # One input topic: one context, not one per message.
        self._context = SerializationContext(topic, MessageField.VALUE)

    def decode(
        self, value: bytes | None, key: bytes | None, partition: int, offset: int
    ) -> StreamingEvent:
        """The event in ``value``; raises InvalidEventError only, whatever ``value`` holds."""
        if not value:
            raise InvalidEventError(EMPTY, "message has no value")
        if len(value) > self.max_message_bytes:
            raise InvalidEventError(
                OVERSIZED, f"message is {len(value)} bytes, limit is {self.max_message_bytes}"
            )
        try:
            record = self._to_record(self._deserialize(value, self._context))
        except Exception as exc:  # every serdes failure is this one message's fault
            raise InvalidEventError(
                self._reason, f"{self._name} value cannot be deserialized: {one_line(exc)}"
            ) from None
        return self.decode_record(record, key, partition, offset)

    def decode_record(
        self, record: Any, key: bytes | None, partition: int, offset: int
    ) -> StreamingEvent:
        """The event in a deserialized record, mapped like a JSON object."""
        if not isinstance(record, dict):
            raise InvalidEventError(
                NOT_AN_OBJECT, f"{self._name} value is a {type(record).__name__}, not a record"
            )
        try:
            # The flat-stream shortcut it records is the JSON decode's; ``decode`` never reads it.
            event = self._from_mapping(record, key, partition, offset)
            if _nested_too_deep(b"", event.attributes, prefilter=False):
                raise InvalidEventError(TOO_DEEP, f"an attribute nests over {MAX_NESTING} levels")
        except InvalidEventError:
            raise
        except Exception as exc:  # one message must never stop the loop, whatever it holds
            raise invalid_from(exc) from None
        return event


__all__ = [
    "NOT_AVRO",
    "NOT_JSON_SCHEMA",
    "NOT_PROTOBUF",
    "REGISTRY_REASONS",
    "RegistryEventDecoder",
    "registry_deserializer",
]
