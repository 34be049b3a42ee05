"""The decoder and encoder of the input and output wire formats, from plain values.

``json`` both ways builds exactly what the daemon ran before registry formats existed: the
plain ``EventDecoder`` and the loop's own JSON encoder, with no registry client at all, so the
JSON path has no extra work per message. Registry formats share one client
(``casewatch.kafka.registry``) and check at start-up that the registry answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from casewatch.daemon.decode import INVALID_REASONS, EventDecoder, FieldNames
from casewatch.daemon.formats import REGISTRY_REASONS, RegistryEventDecoder, registry_deserializer
from casewatch.daemon.parts import AlertEncoder, EvaluationEncoder
from casewatch.kafka.registry import check_reachable, registry_client
from casewatch.scoring.avro_alerts import AvroAlertEncoder
from casewatch.scoring.avro_output import AvroEvaluationEncoder


def invalid_reasons(input_format: str) -> tuple[str, ...]:
    """Every dead-letter reason the decoder of ``input_format`` can give (metric labels)."""
    if input_format == "json":
        return INVALID_REASONS
    return INVALID_REASONS + REGISTRY_REASONS


def event_decoder(
    input_format: str,
    fields: FieldNames,
    *,
    topic: str,
    max_message_bytes: int,
    registry: Mapping[str, str],
    protobuf_message: str | None = None,
) -> EventDecoder:
    """The decoder of ``input_format``; raises ConfigError or SchemaRegistryFailure."""
    if input_format == "json":
        return EventDecoder(fields, max_message_bytes=max_message_bytes)
    client = registry_client(registry)
    check_reachable(client)
    deserialize, to_record = registry_deserializer(input_format, client, topic, protobuf_message)
    return RegistryEventDecoder(
        input_format, deserialize, to_record, topic, fields, max_message_bytes=max_message_bytes
    )


def evaluation_encoder(
    output_format: str, *, topic: str, registry: Mapping[str, str]
) -> EvaluationEncoder | None:
    """The encoder of ``output_format``; None for the loop's JSON encoder."""
    if output_format == "json":
        return None
    client = registry_client(registry)
    check_reachable(client)
    return AvroEvaluationEncoder(client, topic)


def alert_encoder(
    output_format: str, *, topic: str | None, registry: Mapping[str, str]
) -> AlertEncoder | None:
    """Alerts follow the evaluations' format; None for JSON (or no alert topic)."""
    if output_format == "json" or topic is None:
        return None
    return AvroAlertEncoder(registry_client(registry), topic)


__all__ = ["alert_encoder", "evaluation_encoder", "event_decoder", "invalid_reasons"]
