"""From a consumed batch to events: every message becomes an event or a dead-letter record.

This is the per-message boundary of the loop. Nothing one message carries gets past it as an
exception: the decoder is total, and anything else raised for one message is turned into a
dead-letter reason here too, so the message's offset advances like any other's. Consumer error
events in the batch are not messages: they are handed to ``on_consume_error`` and not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka

from casewatch.daemon.checkpoint import Checkpoint
from casewatch.daemon.dead_letter import dead_letter
from casewatch.daemon.decode import EventDecoder, invalid_from
from casewatch.errors import InvalidEventError
from casewatch.events import StreamingEvent
from casewatch.kafka.errors import raise_if_fatal
from casewatch.kafka.producer import OutputProducer
from casewatch.state.restore import Restorer
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.loop_metrics import LoopMetrics

log = get_logger(__name__)

_NO_TIMESTAMP = confluent_kafka.TIMESTAMP_NOT_AVAILABLE
_NAN = float("nan")


class Intake:
    def __init__(
        self,
        decoder: EventDecoder,
        *,
        outputs: OutputProducer,
        dead_letter_topic: str,
        checkpoint: Checkpoint,
        restorer: Restorer,
        metrics: LoopMetrics,
        on_consume_error: Callable[[Any], None] | None = None,
    ) -> None:
        self._decoder = decoder
        self._outputs = outputs
        self._dead_letter_topic = dead_letter_topic
        self._checkpoint = checkpoint
        self._restorer = restorer
        self._metrics = metrics
        self._on_consume_error = on_consume_error or consume_error

    def take(self, messages: list[Any]) -> tuple[list[StreamingEvent], list[float], int]:
        """The batch's events, the Kafka timestamp of each event's message in seconds (NaN when
        it has none: the stream time idle expiry runs on, see ``casewatch.state.stream_time``), and
        how many of the batch's entries were messages (not error events)."""
        events: list[StreamingEvent] = []
        times: list[float] = []
        append, decode, add_time = events.append, self._decoder.decode, times.append
        processed = self._checkpoint.processed
        guard = self._restorer.guard
        windows = guard.windows
        errors = 0
        unkeyed: list[int] = []
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_consume_error(error)
                errors += 1
                continue
            partition, offset, key = message.partition(), message.offset(), message.key()
            processed[partition] = offset
            try:
                event = decode(message.value(), key, partition, offset)
            except InvalidEventError as exc:
                self.dead_letter(message, exc)
                continue
            except Exception as exc:  # the decoder is total; this boundary holds if it is not
                self.dead_letter(message, invalid_from(exc))
                continue
            if key is None:
                unkeyed.append(partition)
            replayed = windows and partition in windows
            if replayed and guard.already_applied(partition, offset, event.case_id):
                continue
            append(event)
            kind, milliseconds = message.timestamp()
            add_time(milliseconds / 1000 if kind != _NO_TIMESTAMP else _NAN)
        if unkeyed:
            self._metrics.unkeyed(unkeyed)
        return events, times, len(messages) - errors

    def dead_letter(self, message: Any, error: InvalidEventError) -> None:
        key, value, headers = dead_letter(message, error.reason, str(error))
        self._outputs.produce(self._dead_letter_topic, key, value, headers)
        self._metrics.invalid(error.reason)


def consume_error(error: Any) -> None:
    """A consumer error event: fatal ones stop the loop, the others are transient."""
    if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
        return
    raise_if_fatal(error, "consumer failed")
    log.warning("consumer_error", error=error.str())
