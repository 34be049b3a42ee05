"""Replay events onto a Kafka topic as casewatch input records (keyed by case id).

Values are JSON unless the caller passes another ``encode`` (``casewatch.kafka.registry_feed``
writes Avro, Protobuf or JSON Schema through a Schema Registry).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import confluent_kafka
import msgspec

from casewatch.errors import DeliveryFailure, KafkaFailure
from casewatch.events import StreamingEvent
from casewatch.kafka import clients

Progress = Callable[[int], None]

_PROGRESS_EVERY = 1000


class InputEvent(msgspec.Struct, omit_defaults=True):
    """The default input record layout (field names as in the default settings)."""

    case_id: str
    activity: str
    timestamp: float | None = None
    attributes: dict[str, Any] = {}
    close: bool = False


@dataclass(frozen=True, slots=True)
class ReplayStats:
    events: int
    cases: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def encode_event(event: StreamingEvent, encoder: msgspec.json.Encoder | None = None) -> bytes:
    """One event as an input record value."""
    record = InputEvent(
        case_id=event.case_id,
        activity=event.name,
        timestamp=event.timestamp,
        attributes=event.attributes,
        close=event.close,
    )
    return (encoder or msgspec.json.Encoder()).encode(record)


class _DeliveryTracker:
    """Counts delivery reports; keeps the first failure for the caller to raise."""

    def __init__(self) -> None:
        self.delivered = 0
        self.first_error: str | None = None

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
        elif self.first_error is None:
            self.first_error = f"{message.topic()}[{message.partition()}]: {error.str()}"


def replay(
    events: Iterable[StreamingEvent],
    *,
    bootstrap_servers: str,
    topic: str,
    rate: float = 0.0,
    progress: Progress | None = None,
    flush_timeout: float = 60.0,
    producer_config: dict[str, Any] | None = None,
    encode: Callable[[StreamingEvent], bytes] | None = None,
) -> ReplayStats:
    """Produce ``events`` to ``topic``; ``rate`` caps events per second (0 = unthrottled).

    ``encode`` makes each value; by default the JSON of ``encode_event``.

    ``progress`` receives the number of events produced so far, every thousand events.
    Raises DeliveryFailure when a record cannot be delivered.
    """
    config = {
        "bootstrap.servers": bootstrap_servers,
        "linger.ms": 20,
        "enable.idempotence": True,
        "log_level": 3,
        **(producer_config or {}),
    }
    producer: Any = clients.producer(config)
    tracker = _DeliveryTracker()
    if encode is None:
        encode = functools.partial(encode_event, encoder=msgspec.json.Encoder())
    cases: set[str] = set()
    started = time.monotonic()
    produced = 0
    for event in events:
        if rate > 0:
            _wait_for_slot(started, produced, rate, producer)
        _produce(producer, topic, event.case_id.encode(), encode(event), tracker)
        cases.add(event.case_id)
        produced += 1
        if produced % _PROGRESS_EVERY == 0:
            producer.poll(0)
            if progress is not None:
                progress(produced)
    remaining = producer.flush(flush_timeout)
    elapsed = time.monotonic() - started
    if progress is not None:
        progress(produced)
    if tracker.first_error is not None:
        raise DeliveryFailure(f"event not delivered: {tracker.first_error}")
    if remaining:
        raise DeliveryFailure(f"{remaining} events still undelivered after {flush_timeout:g} s")
    return ReplayStats(events=produced, cases=len(cases), seconds=elapsed)


def _produce(producer: Any, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            # The local queue is full: serve delivery reports to make room, then retry.
            producer.poll(0.1)
        except confluent_kafka.KafkaException as exc:
            raise KafkaFailure(f"cannot produce to {topic!r}: {exc}") from exc


def _wait_for_slot(started: float, produced: int, rate: float, producer: Any) -> None:
    # poll() returns early when it serves a delivery report, so wait in a loop.
    due = started + produced / rate
    while (ahead := due - time.monotonic()) > 0:
        producer.poll(ahead)
