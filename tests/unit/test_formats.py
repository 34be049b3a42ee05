"""Schema Registry input formats and Avro output, against confluent-kafka's in-process registry.

Each test takes its own ``mock://`` scope: one registry client (and store) per configuration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.daemon.decode import INVALID_REASONS, FieldNames
from casewatch.daemon.formats import REGISTRY_REASONS, RegistryEventDecoder
from casewatch.daemon.wire_formats import evaluation_encoder, event_decoder, invalid_reasons
from casewatch.errors import ConfigError, InvalidEventError
from casewatch.events import (
    Blame,
    ModelIdentity,
    Source,
    StreamingEvaluation,
    StreamingEvent,
    TransitionResidual,
)
from casewatch.kafka.protobuf_messages import (
    event_message_class,
    input_message_class,
    message_to_dict,
)
from casewatch.kafka.registry import registry_client
from casewatch.kafka.registry_feed import registry_event_encoder
from casewatch.scoring.avro_output import AvroEvaluationEncoder

TOPIC = "orders"
EVENTS = [
    StreamingEvent("c-1", "Create PO", 1_700_000_000.25, {"user": "Ann", "amount": "12"}),
    StreamingEvent("c-1", "Approve PO", None, {}, close=True),
    StreamingEvent("c-2", "Create PO", 1_700_000_100.0, {"user": "Bo"}),
]


@pytest.fixture
def registry() -> dict[str, str]:
    return {"url": f"mock://{uuid.uuid4().hex}"}


DEFAULT_FIELDS = FieldNames()


def _decoder(fmt: str, registry: dict[str, str], fields: FieldNames = DEFAULT_FIELDS) -> Any:
    return event_decoder(fmt, fields, topic=TOPIC, max_message_bytes=10_000, registry=registry)


def _plain(event: StreamingEvent) -> tuple[Any, ...]:
    return (event.case_id, event.name, event.timestamp, event.attributes, event.close)


@pytest.mark.parametrize("fmt", ["avro", "protobuf", "json_schema"])
def test_events_written_by_produce_decode_to_the_same_events(
    fmt: str, registry: dict[str, str]
) -> None:
    encode = registry_event_encoder(fmt, registry_client(registry), TOPIC)
    values = [encode(event) for event in EVENTS]
    decoder = _decoder(fmt, registry)
    decoded = [decoder.decode(value, None, 3, offset) for offset, value in enumerate(values)]
    assert [_plain(e) for e in decoded] == [_plain(e) for e in EVENTS]
    assert [(e.partition, e.offset) for e in decoded] == [(3, 0), (3, 1), (3, 2)]


@pytest.mark.parametrize(
    ("fmt", "reason", "name"),
    [
        ("avro", "not_avro", "Avro"),
        ("protobuf", "not_protobuf", "Protobuf"),
        ("json_schema", "not_json_schema", "JSON Schema"),
    ],
)
def test_undeserializable_values_name_the_format_and_the_error(
    fmt: str, reason: str, name: str, registry: dict[str, str]
) -> None:
    good = registry_event_encoder(fmt, registry_client(registry), TOPIC)(EVENTS[0])
    decoder = _decoder(fmt, registry)
    unknown_id = b"\x00\x00\x00\x7f\xff" + good[5:]
    for value in (b"{not framed}", unknown_id, good[:-3]):
        with pytest.raises(InvalidEventError) as caught:
            decoder.decode(value, b"c-1", 0, 7)
        assert caught.value.reason == reason
        detail = str(caught.value)
        assert detail.startswith(f"{name} value cannot be deserialized: ")
        assert "\n" not in detail and len(detail) < 300
    assert decoder.decode(good, None, 0, 8).case_id == "c-1"


def test_empty_and_oversized_values_keep_their_reasons(registry: dict[str, str]) -> None:
    decoder = _decoder("avro", registry)
    for value, reason in ((b"", "empty"), (None, "empty"), (b"\x00" * 20_000, "oversized")):
        with pytest.raises(InvalidEventError) as caught:
            decoder.decode(value, None, 0, 0)
        assert caught.value.reason == reason


def _avro_value(registry: dict[str, str], schema: str, record: Any) -> bytes:
    serialize = AvroSerializer(registry_client(registry), schema)
    value: bytes = serialize(record, SerializationContext(TOPIC, MessageField.VALUE))
    return value


def test_avro_records_take_the_same_field_mapping_as_json(registry: dict[str, str]) -> None:
    # XES-style names, a timestamp-millis logical type, flat extra fields and a key fallback.
    schema = """{"type": "record", "name": "XesEvent", "fields": [
        {"name": "concept:name", "type": "string"},
        {"name": "time:timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "org:resource", "type": "string"},
        {"name": "cost", "type": "long"}]}""".replace("concept:name", "activity_name")
    schema = schema.replace("time:timestamp", "ts").replace("org:resource", "resource")
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = _avro_value(
        registry, schema, {"activity_name": "Pay", "ts": when, "resource": "Cy", "cost": 7}
    )
    fields = FieldNames(case_id="case", activity="activity_name", timestamp="ts")
    event = _decoder("avro", registry, fields).decode(value, b"k-9", 1, 2)
    assert event.case_id == "k-9"
    assert (event.name, event.timestamp) == ("Pay", when.timestamp())
    assert event.attributes == {"resource": "Cy", "cost": 7}


def test_avro_records_missing_a_field_are_invalid_like_json(registry: dict[str, str]) -> None:
    schema = '{"type": "record", "name": "E", "fields": [{"name": "case_id", "type": "string"}]}'
    value = _avro_value(registry, schema, {"case_id": "c"})
    with pytest.raises(InvalidEventError) as caught:
        _decoder("avro", registry).decode(value, None, 0, 0)
    assert caught.value.reason == "missing_activity"
    primitive = _avro_value(registry, '"string"', "just text")
    with pytest.raises(InvalidEventError) as caught:
        _decoder("avro", registry).decode(primitive, None, 0, 0)
    assert caught.value.reason == "not_an_object"


def test_protobuf_messages_become_records_by_proto_field_name() -> None:
    message = event_message_class()(case_id="c", activity="A", attributes={"u": "x"}, close=True)
    message.timestamp.seconds, message.timestamp.nanos = 10, 500_000_000
    assert message_to_dict(message) == {
        "case_id": "c",
        "activity": "A",
        "timestamp": 10.5,
        "attributes": {"u": "x"},
        "close": True,
    }
    # Fields left at their default are absent, as a JSON producer would leave them out.
    assert message_to_dict(event_message_class()(activity="A")) == {"activity": "A"}


def test_the_protobuf_message_comes_from_the_registry_or_an_import(
    registry: dict[str, str],
) -> None:
    client = registry_client(registry)
    registry_event_encoder("protobuf", client, TOPIC)
    subject = f"{TOPIC}-value"
    assert input_message_class(None, client, subject).DESCRIPTOR.full_name == "casewatch.Event"
    named = input_message_class("casewatch.Event", client, subject)
    assert named.DESCRIPTOR.full_name == "casewatch.Event"
    with pytest.raises(ConfigError, match=r"'x.Other' is not a message of 'orders-value'"):
        input_message_class("x.Other", client, subject)
    imported = input_message_class("google.protobuf.timestamp_pb2:Timestamp", client, subject)
    assert imported.DESCRIPTOR.full_name == "google.protobuf.Timestamp"
    with pytest.raises(ConfigError, match="cannot import"):
        input_message_class("no.such.module:Event", client, subject)
    with pytest.raises(ConfigError, match="is not a Protobuf message class"):
        input_message_class("casewatch.events:StreamingEvent", client, subject)


def test_protobuf_input_without_a_registered_schema_stops_start_up(
    registry: dict[str, str],
) -> None:
    with pytest.raises(Exception, match="cannot read the Protobuf schema of 'orders-value'"):
        _decoder("protobuf", registry)


BLAMES = [
    Blame(2, "Create PO", None, "Create PO", "Create SC", 0.93, 0.01, 2.5,
          "Create PO after Pay; expected Create SC (0.93)"),
    Blame(3, "Pay", "user", "Sam", "Ann", 0.8, 0.05, 1.0, "user Sam on Pay; expected Ann (0.80)"),
]  # fmt: skip


def _evaluation(explanation: list[Blame] | None = None) -> StreamingEvaluation:
    return StreamingEvaluation(
        "0f" * 16, "c-1", 3, 2.5, 1.25, True, {"Create PO": 2.0, "Pay": 0.5},
        [TransitionResidual("Create PO", 2.0), TransitionResidual("Pay", 0.5)], True, "close",
        None, 1_700_000_000.0, 1_700_000_050.5, ModelIdentity("ref", "2.0.0", "ab" * 32),
        Source(None, 2, 41), 1, explanation,
    )  # fmt: skip


@pytest.mark.parametrize("explanation", [None, BLAMES], ids=["unexplained", "explained"])
def test_avro_evaluations_hold_the_json_record_content(
    registry: dict[str, str], explanation: list[Blame] | None
) -> None:
    encoder = evaluation_encoder("avro", topic="scores", registry=registry)
    assert isinstance(encoder, AvroEvaluationEncoder)
    evaluation = _evaluation(explanation)
    value = encoder.encode(evaluation)
    assert value[0] == 0  # Confluent framing: magic byte, then the registered schema id
    assert int.from_bytes(value[1:5], "big") == encoder.schema_id
    client = registry_client(registry)
    assert client.get_latest_version("scores-value").schema_id == encoder.schema_id
    read = AvroDeserializer(client)(value, SerializationContext("scores", MessageField.VALUE))
    assert read == msgspec.json.decode(msgspec.json.encode(evaluation))


def test_json_both_ways_builds_no_registry_part() -> None:
    assert evaluation_encoder("json", topic="scores", registry={}) is None
    decoder = event_decoder("json", FieldNames(), topic=TOPIC, max_message_bytes=10, registry={})
    assert not isinstance(decoder, RegistryEventDecoder)
    assert invalid_reasons("json") == INVALID_REASONS
    assert invalid_reasons("avro") == INVALID_REASONS + REGISTRY_REASONS


def test_an_unusable_registry_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CASEWATCH_SCHEMA_REGISTRY_"):
        registry_client({"url": "mock://x", "no.such.property": "1"})


def test_json_values_failing_their_schema_are_refused(registry: dict[str, str]) -> None:
    good = registry_event_encoder("json_schema", registry_client(registry), TOPIC)(EVENTS[0])
    # The same framing and schema id, a body the event schema rejects (no activity).
    value = good[:5] + b'{"case_id": "c-1"}'
    with pytest.raises(InvalidEventError) as caught:
        _decoder("json_schema", registry).decode(value, None, 0, 0)
    assert caught.value.reason == "not_json_schema"
    assert "activity" in str(caught.value)


def test_a_registry_that_does_not_answer_stops_start_up_in_one_line() -> None:
    from casewatch.kafka.registry import SchemaRegistryFailure

    unreachable = {"url": "http://127.0.0.1:1", "max.retries": "0", "timeout": "2"}
    with pytest.raises(SchemaRegistryFailure) as caught:
        _decoder("avro", unreachable)
    message = str(caught.value)
    assert message.startswith("cannot reach the Schema Registry: ")
    assert "\n" not in message


@pytest.mark.usefixtures("restored_logging")
def test_produce_with_a_registry_format_needs_a_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from casewatch.cli.main import main
    from tests.conftest import BUNDLED_LOG

    monkeypatch.delenv("CASEWATCH_SCHEMA_REGISTRY_URL", raising=False)
    argv = ["produce", str(BUNDLED_LOG), "--topic", "t", "--bootstrap", "127.0.0.1:1"]
    assert main([*argv, "--format", "avro", "--limit-cases", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "--format avro needs a Schema Registry" in err


def test_numeric_registry_properties_are_read_as_numbers() -> None:
    client = registry_client({"url": "mock://n", "timeout": "2.5", "max.retries": "1"})
    assert client is registry_client({"max.retries": "1", "url": "mock://n", "timeout": "2.5"})
    with pytest.raises(ConfigError, match=r"CASEWATCH_SCHEMA_REGISTRY__MAX_RETRIES: must be a"):
        registry_client({"url": "mock://n", "max.retries": "many"})
