"""Records too large for the broker are replaced by a truncated dead-letter record."""

from __future__ import annotations

from typing import Any

import confluent_kafka
import pytest

from casewatch.errors import DeliveryFailure
from casewatch.kafka import producer as kafka_producer
from casewatch.kafka.oversize import Headers, headers_size, record_size, replacement

DLQ = "dlq"
TOO_LARGE = confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE


class FakeMessage:
    def __init__(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> None:
        self._topic, self._key, self._value, self._headers = topic, key, value, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Any:
        return self._headers


class FakeProducer:
    """librdkafka's two size checks: at produce() (client limit) and at delivery (broker's)."""

    broker_limit = 10**9
    client_overhead = 40

    def __init__(self, config: dict[str, Any]) -> None:
        self.client_limit = int(config.get("message.max.bytes", 1_000_000))
        self.queued: list[tuple[FakeMessage, Any]] = []
        self.delivered: list[FakeMessage] = []

    def produce(self, topic: str, *, value: Any, key: Any, headers: Any = None,
                partition: int = -1, on_delivery: Any) -> None:  # fmt: skip
        size = len(key or b"") + len(value or b"") + headers_size(headers)
        if size + self.client_overhead > self.client_limit:
            raise confluent_kafka.KafkaException(confluent_kafka.KafkaError(TOO_LARGE))
        self.queued.append((FakeMessage(topic, key, value, headers), on_delivery))

    def poll(self, timeout: float) -> int:
        queued, self.queued = self.queued, []
        for message, callback in queued:
            size = len(message.key() or b"") + len(message.value() or b"")
            if size + headers_size(message.headers()) > self.broker_limit:
                callback(confluent_kafka.KafkaError(TOO_LARGE), message)
            else:
                self.delivered.append(message)
                callback(None, message)
        return len(queued)

    def flush(self, timeout: float) -> int:
        self.poll(timeout)
        return 0

    def __len__(self) -> int:
        return len(self.queued)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    class Fake(FakeProducer):
        instances: list[FakeProducer] = []  # noqa: RUF012 - per-test class

        def __init__(self, config: dict[str, Any]) -> None:
            super().__init__(config)
            Fake.instances.append(self)

    monkeypatch.setattr(kafka_producer.confluent_kafka, "Producer", Fake)
    return Fake


def producer(config: dict[str, Any] | None = None) -> kafka_producer.OutputProducer:
    return kafka_producer.OutputProducer(config or {}, max_pending=100, dead_letter_topic=DLQ)


def header(message: FakeMessage, name: str) -> bytes:
    return dict(message.headers())[name]


@pytest.mark.parametrize("limit", [1_000_000, 200_000, 20_000])
def test_replacement_fits_and_names_the_original_sizes(limit: int) -> None:
    key, value = b"k" * 520_000, b"v" * 1_100_000
    record = replacement("out", key, value, None, limit=limit, dead_letter_topic=DLQ, detail="d")
    assert record_size(record.key, record.value, record.headers) <= limit
    headers = dict(record.headers)
    assert headers["casewatch.error.reason"] == b"output_too_large"
    assert headers["casewatch.output.topic"] == b"out"
    assert headers["casewatch.original.key_bytes"] == b"520000"
    assert headers["casewatch.original.value_bytes"] == b"1100000"
    assert record.key is not None and key.startswith(record.key) and len(record.key) <= 1024
    assert value.startswith(record.value) and len(record.value) > limit // 2


def test_a_dead_letter_record_keeps_its_reason_and_source() -> None:
    original: Headers = [
        ("casewatch.error.reason", b"not_json"),
        ("casewatch.error.detail", b"message is not valid JSON"),
        ("casewatch.source.offset", b"17"),
    ]
    record = replacement(
        DLQ, b"k" * 200_000, b"x" * 1_000_000, original, limit=1_000_000,
        dead_letter_topic=DLQ, detail="too large",
    )  # fmt: skip
    headers = dict(record.headers)
    assert headers["casewatch.error.reason"] == b"not_json"
    assert headers["casewatch.source.offset"] == b"17"
    assert headers["casewatch.original.key_bytes"] == b"200000"
    assert record_size(record.key, record.value, record.headers) <= 1_000_000


def test_an_oversized_evaluation_is_replaced_before_it_reaches_the_broker(
    fake: Any,
) -> None:
    outputs = producer()
    outputs.produce("out", b"c" * 520_000, b"{" + b"x" * 600_000 + b"}")
    outputs.produce("out", b"small", b"{}")
    assert outputs.flush(1)
    delivered = fake.instances[0].delivered
    assert [m.topic() for m in delivered] == [DLQ, "out"]
    assert header(delivered[0], "casewatch.original.key_bytes") == b"520000"
    assert outputs.oversized == 1 and outputs.pending == 0


def test_an_oversized_record_of_a_batch_is_replaced_in_its_place(fake: Any) -> None:
    outputs = producer()
    keys = [b"small", b"c" * 520_000, b"last"]
    outputs.produce_many("out", keys, [b"{}", b"{" + b"x" * 600_000 + b"}", b"{}"])
    generation = outputs.mark()
    assert outputs.pending == 3 and not outputs.delivered_through(generation)
    assert outputs.flush(1)
    delivered = fake.instances[0].delivered
    assert [m.topic() for m in delivered] == ["out", DLQ, "out"]
    assert header(delivered[1], "casewatch.original.key_bytes") == b"520000"
    assert outputs.oversized == 1 and outputs.delivered == 3
    assert outputs.delivered_through(generation)


def test_a_refusal_at_produce_in_a_batch_is_replaced(fake: Any) -> None:
    outputs = producer({"message.max.bytes": 100_000})
    fake.client_overhead = 5_000  # librdkafka counting more than our estimate
    outputs.produce_many("out", [b"a", b"k", b"b"], [b"{}", b"v" * 99_000, b"{}"])
    assert outputs.flush(1)
    delivered = fake.instances[0].delivered
    assert [m.topic() for m in delivered] == ["out", DLQ, "out"]
    assert outputs.oversized == 1 and outputs.pending == 0


def test_a_refusal_at_produce_is_replaced(fake: Any) -> None:
    outputs = producer({"message.max.bytes": 100_000})
    fake.client_overhead = 5_000  # librdkafka counting more than our estimate
    outputs.produce("out", b"k", b"v" * 99_000)
    assert outputs.flush(1)
    (message,) = fake.instances[0].delivered
    assert message.topic() == DLQ and outputs.oversized == 1


def test_a_refusal_in_the_delivery_report_is_replaced_in_the_same_generation(fake: Any) -> None:
    fake.broker_limit = 300_000
    outputs = producer()
    outputs.produce("out", b"k" * 1000, b"v" * 500_000)
    generation = outputs.mark()
    outputs.produce("out", b"k", b"small")
    outputs.poll(0)  # the refusal arrives; its replacement is queued
    assert not outputs.delivered_through(generation)
    assert outputs.flush(1)
    assert outputs.delivered_through(generation)
    delivered = fake.instances[0].delivered
    assert sorted(m.topic() for m in delivered) == [DLQ, "out"]
    replaced = next(m for m in delivered if m.topic() == DLQ)
    assert header(replaced, "casewatch.original.value_bytes") == b"500000"
    assert outputs.oversized == 1 and outputs.failed == 0


def test_a_small_record_the_broker_refuses_is_still_a_delivery_failure(fake: Any) -> None:
    fake.broker_limit = 100
    outputs = producer()
    outputs.produce("out", b"k", b"v" * 1000)
    with pytest.raises(DeliveryFailure):
        outputs.flush(1)
