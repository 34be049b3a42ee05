"""Input events in a Schema Registry format, for ``casewatch produce --format``.

Each format writes the layout of the default field names (``case_id``, ``activity``,
``timestamp``, ``attributes``, ``close``) with a bundled schema registered under
``<topic>-value``: Avro ``casewatch/schemas/event.avsc``, JSON Schema
``casewatch/schemas/event.schema.json``, and Protobuf ``casewatch.Event``
(``casewatch.kafka.protobuf_messages``: a ``google.protobuf.Timestamp`` and a string map of
attributes, so non-string attribute values are written as text).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.errors import ConfigError
from casewatch.events import StreamingEvent
from casewatch.kafka.protobuf_messages import event_message_class
from casewatch.kafka.registry import (
    EVENT_AVRO,
    EVENT_JSON_SCHEMA,
    check_reachable,
    registry_errors,
    schema_text,
)

REGISTRY_FORMATS: Final = ("avro", "protobuf", "json_schema")

EventEncoder = Callable[[StreamingEvent], bytes]


def _record(event: StreamingEvent) -> dict[str, Any]:
    return {
        "case_id": event.case_id,
        "activity": event.name,
        "timestamp": event.timestamp,
        "attributes": event.attributes,
        "close": event.close,
    }


def _json_record(event: StreamingEvent) -> dict[str, Any]:
    # Like the JSON encoder, which leaves out what is unset.
    record = _record(event)
    return {name: value for name, value in record.items() if value is not None}


def registry_event_encoder(input_format: str, client: Any, topic: str) -> EventEncoder:
    """What turns one event into a value of ``input_format``; registers its schema up front."""
    if input_format not in REGISTRY_FORMATS:
        raise ConfigError(
            f"--format must be one of {', '.join(('json', *REGISTRY_FORMATS))}, "
            f"got {input_format!r}"
        )
    check_reachable(client)
    context = SerializationContext(topic, MessageField.VALUE)
    serialize: Callable[[Any, SerializationContext], bytes | None]
    to_value: Callable[[StreamingEvent], Any]
    if input_format == "avro":
        serialize = AvroSerializer(client, schema_text(EVENT_AVRO), lambda record, _: record)
        to_value = _record
    elif input_format == "json_schema":
        serialize = JSONSerializer(schema_text(EVENT_JSON_SCHEMA), client, lambda record, _: record)
        to_value = _json_record
    else:
        message_class = event_message_class()
        serialize = ProtobufSerializer(message_class, client, {"use.deprecated.format": False})
        to_value = _protobuf_message(message_class)

    def encode(event: StreamingEvent) -> bytes:
        value = serialize(to_value(event), context)
        assert value is not None  # only a None record serializes to None
        return value

    with registry_errors(f"cannot register the {input_format} event schema for {topic!r}"):
        # The first value registers the schema: a refusal ends here, before anything is sent.
        encode(StreamingEvent("schema-check", "schema-check"))
    return encode


def _protobuf_message(message_class: Any) -> Callable[[StreamingEvent], Any]:
    def to_message(event: StreamingEvent) -> Any:
        message = message_class(
            case_id=event.case_id,
            activity=event.name,
            attributes={name: _text(value) for name, value in event.attributes.items()},
            close=event.close,
        )
        if event.timestamp is not None:
            # Timestamp nanos are never negative: whole seconds round down.
            seconds = math.floor(event.timestamp)
            nanos = min(round((event.timestamp - seconds) * 1e9), 999_999_999)
            message.timestamp.seconds = seconds
            message.timestamp.nanos = nanos
        return message

    return to_message


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


__all__ = ["REGISTRY_FORMATS", "EventEncoder", "registry_event_encoder"]
