"""Evaluations as Avro, for ``CASEWATCH_OUTPUT_FORMAT=avro``.

The record content is the JSON record's (``casewatch.events.StreamingEvaluation``), written with
the bundled schema ``casewatch/schemas/evaluation.avsc`` in Confluent's wire format (magic byte,
schema id, Avro binary). The schema is registered under ``<output topic>-value`` (TopicNameStrategy)
at start-up, so a registry that refuses it (unreachable, incompatible with the subject's
previous version) stops the daemon before it consumes anything.
"""

from __future__ import annotations

from typing import Any

import msgspec
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.kafka.registry import EVALUATION_AVRO, registry_errors, schema_text, value_subject


def _as_dict(record: msgspec.Struct, context: Any) -> Any:
    return msgspec.to_builtins(record)


class RegisteredAvroEncoder:
    """``encode(record) -> bytes`` like ``msgspec.json.Encoder``, in Avro with ``schema``
    registered under ``<topic>-value`` (``what`` names the record in the one-line error)."""

    def __init__(self, client: Any, topic: str, schema: str, what: str) -> None:
        self.schema = schema
        self.subject = value_subject(topic)
        with registry_errors(f"cannot register the {what} schema as {self.subject!r}"):
            self.schema_id: int = client.register_schema(self.subject, Schema(self.schema, "AVRO"))
        # Written with the id registered above: the serializer registers nothing per record.
        self._serialize = AvroSerializer(
            client,
            self.schema,
            _as_dict,
            {"auto.register.schemas": False, "use.schema.id": self.schema_id},
        )
        self._context = SerializationContext(topic, MessageField.VALUE)

    def encode(self, record: msgspec.Struct) -> bytes:
        return self._serialize(record, self._context)  # type: ignore[no-any-return]


class AvroEvaluationEncoder(RegisteredAvroEncoder):
    """Evaluations with the bundled ``evaluation.avsc``."""

    def __init__(self, client: Any, topic: str) -> None:
        super().__init__(client, topic, schema_text(EVALUATION_AVRO), "evaluation")
