"""Kafka errors converted where they enter casewatch: the one place they are taken apart.

confluent-kafka raises ``KafkaException`` carrying a ``KafkaError`` (a few calls carry only a
message); consumed messages and delivery reports carry a ``KafkaError`` directly. Every Kafka
call that can fail the daemon runs inside ``kafka_errors``, which raises the most specific
casewatch error with the original chained as its cause:

    a newer instance took over the transactional id  ->  KafkaFailure "fenced by a newer ..."
    anything else                                    ->  KafkaFailure "<what failed>: <reason>"

Callers that can recover from a rejected request (a commit refused during a rebalance) ask
``is_fatal`` before deciding to retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import confluent_kafka

from casewatch.errors import KafkaFailure

_FENCED = frozenset(
    {
        confluent_kafka.KafkaError._FENCED,
        confluent_kafka.KafkaError.PRODUCER_FENCED,
        confluent_kafka.KafkaError.INVALID_PRODUCER_EPOCH,
    }
)


def kafka_error(exc: BaseException) -> confluent_kafka.KafkaError | None:
    """The KafkaError an exception carries, None when it carries none."""
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, confluent_kafka.KafkaError) else None


def error_code(exc: BaseException) -> int | None:
    error = kafka_error(exc)
    return None if error is None else int(error.code())


def reason(exc: BaseException) -> str:
    """librdkafka's own description of the error, without the KafkaError{...} wrapping."""
    error = kafka_error(exc)
    return str(exc) if error is None else str(error.str())


def is_fatal(exc: BaseException) -> bool:
    """Whether the client is unusable after ``exc`` (fenced, fatal idempotence error...)."""
    error = kafka_error(exc)
    return error is not None and bool(error.fatal())


def to_casewatch(exc: BaseException, action: str) -> KafkaFailure:
    """The casewatch error for a Kafka exception raised while doing ``action``, chained to it
    (also when it is kept to be raised later, as a rebalance callback does)."""
    if error_code(exc) in _FENCED:
        failure = KafkaFailure(
            f"fenced by a newer instance with the same transactional id: {reason(exc)}"
        )
    else:
        failure = KafkaFailure(f"{action}: {reason(exc)}")
    failure.__cause__ = exc
    return failure


@contextlib.contextmanager
def kafka_errors(action: str) -> Iterator[None]:
    """Raise a Kafka exception of the block as a casewatch error, chained to it."""
    try:
        yield
    except confluent_kafka.KafkaException as exc:
        raise to_casewatch(exc, action) from exc


def raise_if_fatal(error: Any, action: str) -> None:
    """For a KafkaError a message or report carries: raise when the client cannot go on."""
    if error.fatal():
        raise KafkaFailure(f"{action}: {error.str()}")
