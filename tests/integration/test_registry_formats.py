"""Avro and Protobuf input, and Avro output, through the daemon and the embedded broker.

confluent-kafka's ``mock://`` Schema Registry lives in one process, so these tests run the
daemon in-process, on a thread: the test's serializers and the daemon share the registry client
``casewatch.kafka.registry`` keeps per configuration, and with it the registered schemas.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import confluent_kafka
import msgspec
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.daemon.build import build_daemon, load_evaluator, start_telemetry
from casewatch.daemon.decode import EventDecoder
from casewatch.daemon.loop import Daemon
from casewatch.events import StreamingEvaluation, StreamingEvent
from casewatch.kafka.feed import encode_event, replay
from casewatch.kafka.oversize import DETAIL_HEADER, REASON_HEADER
from casewatch.kafka.registry import registry_client
from casewatch.kafka.registry_feed import registry_event_encoder
from casewatch.settings import Settings
from tests.integration.daemon_harness import (
    QUIET,
    Record,
    case_events,
    evaluations,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CASES = 200


def _settings(
    bootstrap: str, topics: dict[str, str], model: Path, registry: str, **formats: Any
) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        input_topic=topics["input"],
        output_topic=topics["output"],
        dlq_topic=topics["dlq"],
        group_id=topics["group"],
        model_path=model,
        metrics_host="127.0.0.1",
        metrics_port=0,
        commit_interval_seconds=0.3,
        max_batch_wait_ms=50,
        model_watch_interval_seconds=0,
        schema_registry_url=registry,
        **formats,
    )


@contextmanager
def running(settings: Settings) -> Iterator[Daemon]:
    """The daemon of ``settings`` running on a thread until the block ends."""
    evaluator = load_evaluator(settings)
    telemetry, _, _ = start_telemetry(settings, evaluator)
    failures: list[BaseException] = []
    try:
        daemon = build_daemon(settings, evaluator, telemetry)

        def run() -> None:
            try:
                daemon.run()
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        thread = threading.Thread(target=run, name="casewatch-daemon", daemon=True)
        thread.start()
        try:
            yield daemon
        finally:
            daemon.request_stop()
            thread.join(30)
        assert not thread.is_alive()
        assert failures == []
    finally:
        telemetry.close()


def _json_path_scores(events: list[StreamingEvent], settings: Settings) -> dict[str, float]:
    """Each case's closing score when the same events arrive as JSON."""
    decoder = EventDecoder()
    decoded = [
        decoder.decode(encode_event(e), e.case_id.encode(), 0, i) for i, e in enumerate(events)
    ]
    scored = load_evaluator(settings).on_events(decoded, source_topic=settings.input_topic)
    return {e.case_id: e.trace_score for e in scored if e.closed}


def _produce_raw(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer: Any = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **QUIET})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0


def _headers(record: Record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers.items()}


def test_avro_events_in_avro_evaluations_out_bad_values_to_the_dead_letter_topic(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path
) -> None:
    registry = f"mock://{uuid.uuid4().hex}"
    settings = _settings(
        kafka_bootstrap, topics, model_path, registry, input_format="avro", output_format="avro"
    )
    events = case_events(CASES)
    half = len(events) // 2
    client = registry_client(settings.registry_config())
    encode = registry_event_encoder("avro", client, topics["input"])
    good = encode(events[0])
    bad = [
        (b"1", b"\x07" + good[1:]),  # wrong magic byte
        (b"2", b"\x00\x00\x0f\xff\xff" + good[5:]),  # a schema id the registry does not know
        (b"3", good[:8]),  # truncated Avro
    ]
    with running(settings):
        replay(
            events[:half], bootstrap_servers=kafka_bootstrap, topic=topics["input"], encode=encode
        )
        _produce_raw(kafka_bootstrap, topics["input"], bad)
        replay(
            events[half:], bootstrap_servers=kafka_bootstrap, topic=topics["input"], encode=encode
        )
        outputs = read_records(kafka_bootstrap, topics["output"], until=CASES, timeout=60)
        dead = read_records(kafka_bootstrap, topics["dlq"], until=len(bad), timeout=30)

    read = AvroDeserializer(client)
    context = SerializationContext(topics["output"], MessageField.VALUE)
    published = [read(r.value, context) for r in outputs]
    scores = {p["case_id"]: p["trace_score"] for p in published if p["closed"]}
    assert scores == pytest.approx(_json_path_scores(events, settings))
    assert all(p["source"]["topic"] == topics["input"] for p in published)
    # Each Avro evaluation is a JSON evaluation record, field for field.
    as_records = [msgspec.convert(p, StreamingEvaluation) for p in published]
    assert [msgspec.to_builtins(r) for r in as_records] == published
    assert client.get_latest_version(f"{topics['output']}-value").schema_id == int.from_bytes(
        outputs[0].value[1:5] if outputs[0].value else b"", "big"
    )

    assert sorted(r.key or b"" for r in dead) == [b"1", b"2", b"3"]
    for record in dead:
        headers = _headers(record)
        assert headers[REASON_HEADER] == "not_avro"
        assert headers[DETAIL_HEADER].startswith("Avro value cannot be deserialized: ")
        assert headers["casewatch.source.topic"] == topics["input"]
    details = " ".join(_headers(r)[DETAIL_HEADER] for r in dead)
    assert "magic byte" in details.lower()


def test_protobuf_events_score_like_json_with_the_schema_taken_from_the_registry(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path
) -> None:
    registry = f"mock://{uuid.uuid4().hex}"
    settings = _settings(kafka_bootstrap, topics, model_path, registry, input_format="protobuf")
    events = case_events(CASES)
    client = registry_client(settings.registry_config())
    # Registered before the daemon starts: it compiles the message class from this schema.
    encode = registry_event_encoder("protobuf", client, topics["input"])
    with running(settings):
        replay(events, bootstrap_servers=kafka_bootstrap, topic=topics["input"], encode=encode)
        outputs = read_records(kafka_bootstrap, topics["output"], until=CASES, timeout=60)

    published = evaluations(outputs)
    scores = {e.case_id: e.trace_score for e in published if e.closed}
    assert scores == pytest.approx(_json_path_scores(events, settings))
    assert {e.trigger for e in published} == {"close"}


@pytest.mark.usefixtures("restored_logging")
def test_casewatch_produce_writes_avro_events_the_registry_can_read(
    kafka_bootstrap: str, topics: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from casewatch.cli.main import main
    from tests.conftest import BUNDLED_LOG

    registry = f"mock://{uuid.uuid4().hex}"
    argv = ["produce", str(BUNDLED_LOG), "--topic", topics["input"], "--limit-cases", "20"]
    argv += ["--bootstrap", kafka_bootstrap, "--format", "avro", "--schema-registry", registry]
    assert main(argv) == 0
    produced = int(capsys.readouterr().out.split()[1])
    records = read_records(kafka_bootstrap, topics["input"], until=produced, timeout=30)
    read = AvroDeserializer(registry_client({"url": registry}))
    context = SerializationContext(topics["input"], MessageField.VALUE)
    events = [read(r.value, context) for r in records]
    assert len(events) == produced
    assert {e["case_id"] for e in events} == {str(i) for i in range(1, 21)}
    assert all(r.key == e["case_id"].encode() for r, e in zip(records, events, strict=True))
    assert sum(e["close"] for e in events) == 20
