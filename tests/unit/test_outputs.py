"""The output producer: delivery reports are counted, the first failure is kept and raised by
the loop's thread, a full queue is waited out, and generations say what a checkpoint waits for.

Record size limits and their replacement are in ``test_oversize.py``.
"""

from __future__ import annotations

import confluent_kafka
import pytest

from casewatch.errors import DeliveryFailure, KafkaFailure
from tests.unit.fakes import FakeProducer, fake_outputs, kafka_error

OUT = "out"
TIMED_OUT = confluent_kafka.KafkaError._MSG_TIMED_OUT


def test_delivered_records_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    for case in (b"a", b"b", b"c"):
        outputs.produce(OUT, case, b"evaluation")
    assert outputs.pending == 3
    assert outputs.flush(1.0)
    assert (outputs.pending, outputs.delivered, outputs.failed) == (0, 3, 0)
    assert [m.key() for m in producer.records(OUT)] == [b"a", b"b", b"c"]


def test_a_tombstone_goes_to_the_partition_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    outputs.produce("changelog", b"case", None, [("h", b"1")], 3)
    assert outputs.flush(1.0)
    (record,) = producer.records("changelog")
    assert (record.partition(), record.value(), record.headers()) == (3, None, [("h", b"1")])


def test_a_delivery_error_is_recorded_not_raised_in_the_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "Local: Message timed out")
    outputs.produce(OUT, b"a", b"evaluation")
    outputs.produce("other", b"b", b"evaluation")
    outputs.poll(0)  # serves both reports without raising
    assert (outputs.pending, outputs.delivered, outputs.failed) == (0, 1, 1)
    assert outputs.first_error == "out[0]: Local: Message timed out"


def test_a_delivery_error_is_raised_at_flush_and_when_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "Local: Message timed out")
    outputs.produce(OUT, b"a", b"evaluation")
    with pytest.raises(DeliveryFailure, match=r"output not delivered: out\[0\]: .*timed out"):
        outputs.flush(1.0)
    with pytest.raises(DeliveryFailure):
        outputs.raise_first_error()
    # It stays raised: nothing derived from later input may be committed past the lost record.
    del producer.fail[OUT]
    outputs.produce(OUT, b"b", b"evaluation")
    with pytest.raises(DeliveryFailure):
        outputs.flush(1.0)


def test_the_first_delivery_error_is_the_one_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "first")
    outputs.produce(OUT, b"a", b"evaluation")
    outputs.poll(0)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "second")
    outputs.produce(OUT, b"b", b"evaluation")
    outputs.poll(0)
    assert outputs.failed == 2
    with pytest.raises(DeliveryFailure, match="first"):
        outputs.raise_first_error()


def test_flush_says_when_records_are_still_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.hold = True
    outputs.produce(OUT, b"a", b"evaluation")
    assert not outputs.flush(0.02)
    assert outputs.pending == 1
    producer.hold = False
    assert outputs.flush(1.0)


def test_a_full_queue_is_waited_out_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.queue_limit = 2
    for case in (b"a", b"b", b"c", b"d", b"e"):
        outputs.produce(OUT, case, b"evaluation")
    assert producer.buffer_errors >= 1  # the queue was full at least once
    assert outputs.flush(1.0)
    assert [m.key() for m in producer.records(OUT)] == [b"a", b"b", b"c", b"d", b"e"]
    assert outputs.delivered == 5


def test_over_limit_counts_undelivered_records(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch, max_pending=2)
    producer.hold = True
    outputs.produce(OUT, b"a", b"evaluation")
    outputs.produce(OUT, b"b", b"evaluation")
    assert not outputs.over_limit()
    outputs.produce(OUT, b"c", b"evaluation")
    assert outputs.over_limit()
    producer.release(2)
    assert not outputs.over_limit()
    assert outputs.pending == 1


def test_a_produce_error_is_a_kafka_failure_naming_the_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refusing(FakeProducer):
        def produce(self, topic: str, *args: object, **kwargs: object) -> None:
            raise confluent_kafka.KafkaException(
                kafka_error(confluent_kafka.KafkaError._UNKNOWN_TOPIC, "Local: Unknown topic")
            )

    outputs, _ = fake_outputs(monkeypatch, Refusing())
    with pytest.raises(KafkaFailure, match="cannot produce to 'out'"):
        outputs.produce(OUT, b"a", b"evaluation")
    assert outputs.pending == 0


# -- produce_many: a batch of records, each as produce would ------------------------------------


def test_a_batch_is_queued_in_order_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    outputs.produce_many(OUT, [b"a", b"b", b"c"], [b"1", b"2", b"3"])
    assert outputs.pending == 3
    assert outputs.flush(1.0)
    assert (outputs.pending, outputs.delivered, outputs.failed) == (0, 3, 0)
    assert [(m.key(), m.value()) for m in producer.records(OUT)] == [
        (b"a", b"1"), (b"b", b"2"), (b"c", b"3"),
    ]  # fmt: skip


def test_a_full_queue_in_a_batch_is_waited_out_not_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.queue_limit = 2
    keys = [b"a", b"b", b"c", b"d", b"e"]
    outputs.produce_many(OUT, keys, [b"evaluation"] * 5)
    assert producer.buffer_errors >= 1
    # Reports served while the queue was full are counted against records already counted.
    assert outputs.pending == len(producer) and outputs.delivered == 5 - len(producer)
    assert outputs.flush(1.0)
    assert [m.key() for m in producer.records(OUT)] == keys
    assert outputs.delivered == 5


def test_a_batch_belongs_to_the_generation_it_is_produced_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.hold = True
    outputs.produce_many(OUT, [b"a", b"b"], [b"1", b"2"])
    first = outputs.mark()
    outputs.produce_many(OUT, [b"c"], [b"3"])
    second = outputs.mark()
    producer.release(1)
    assert not outputs.delivered_through(first)
    producer.release(1)
    assert outputs.delivered_through(first)
    assert not outputs.delivered_through(second)
    producer.release(1)
    assert outputs.delivered_through(second)


def test_a_failed_record_of_a_batch_fails_its_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "Local: Message timed out")
    outputs.produce_many(OUT, [b"a", b"b"], [b"1", b"2"])
    generation = outputs.mark()
    outputs.poll(0)
    assert (outputs.pending, outputs.delivered, outputs.failed) == (0, 0, 2)
    with pytest.raises(DeliveryFailure, match=r"out\[0\]: .*timed out"):
        outputs.delivered_through(generation)


def test_a_produce_error_in_a_batch_keeps_the_count_of_what_was_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class RefusingThird(FakeProducer):
        def produce(self, topic: str, *args: object, **kwargs: object) -> None:
            if kwargs.get("key") == b"c":
                raise confluent_kafka.KafkaException(
                    kafka_error(confluent_kafka.KafkaError._UNKNOWN_TOPIC, "Local: Unknown topic")
                )
            super().produce(topic, *args, **kwargs)  # type: ignore[arg-type]

    outputs, producer = fake_outputs(monkeypatch, RefusingThird())
    with pytest.raises(KafkaFailure, match="cannot produce to 'out'"):
        outputs.produce_many(OUT, [b"a", b"b", b"c", b"d"], [b"1"] * 4)
    assert outputs.pending == 2 == len(producer)
    assert outputs.flush(1.0)
    assert [m.key() for m in producer.records(OUT)] == [b"a", b"b"]


# -- generations: what a checkpoint waits for -----------------------------------------------------


def test_a_generation_is_delivered_once_its_records_are(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.hold = True
    outputs.produce(OUT, b"a", b"evaluation")
    outputs.produce(OUT, b"b", b"evaluation")
    generation = outputs.mark()
    assert not outputs.delivered_through(generation)
    producer.release(1)
    assert not outputs.delivered_through(generation)
    producer.release(1)
    assert outputs.delivered_through(generation)


def test_a_generation_does_not_wait_for_later_records(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.hold = True
    outputs.produce(OUT, b"a", b"evaluation")
    first = outputs.mark()
    outputs.produce(OUT, b"b", b"evaluation")  # produced while the checkpoint waits
    second = outputs.mark()
    producer.release(1)
    assert outputs.delivered_through(first)
    assert not outputs.delivered_through(second)
    producer.release(1)
    assert outputs.delivered_through(second)


def test_a_generation_waits_for_older_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.hold = True
    outputs.produce(OUT, b"a", b"evaluation")
    outputs.mark()
    outputs.produce(OUT, b"b", b"evaluation")
    second = outputs.mark()
    producer.release(1, newest=True)  # reports of different partitions come in any order
    assert not outputs.delivered_through(second)
    producer.release(1)
    assert outputs.delivered_through(second)


def test_an_empty_generation_is_delivered_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, _ = fake_outputs(monkeypatch)
    assert outputs.delivered_through(outputs.mark())


def test_a_failed_record_fails_its_generation_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs, producer = fake_outputs(monkeypatch)
    producer.fail[OUT] = kafka_error(TIMED_OUT, "Local: Message timed out")
    outputs.produce(OUT, b"a", b"evaluation")
    generation = outputs.mark()
    outputs.poll(0)
    with pytest.raises(DeliveryFailure):
        outputs.delivered_through(generation)


def test_the_transactional_id_makes_the_producer_transactional(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, _ = fake_outputs(monkeypatch)
    transactional, producer = fake_outputs(monkeypatch, config={"transactional.id": "cw-1"})
    assert not plain.transactional
    assert transactional.transactional
    transactional.start_transactions(1.0)
    assert producer.transactions == ["init", "begin"]


def test_a_fenced_transaction_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fenced(FakeProducer):
        def commit_transaction(self, timeout: float = -1) -> None:
            error = kafka_error(confluent_kafka.KafkaError._FENCED, "Local: fenced", fatal=True)
            raise confluent_kafka.KafkaException(error)

    outputs, _ = fake_outputs(monkeypatch, Fenced(), config={"transactional.id": "cw-1"})
    outputs.start_transactions(1.0)
    with pytest.raises(KafkaFailure, match="fenced by a newer instance"):
        outputs.commit_transaction([], "group", 1.0)
