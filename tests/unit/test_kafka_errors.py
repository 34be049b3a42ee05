"""Kafka errors are taken apart in one module and become casewatch errors chained to them."""

from __future__ import annotations

import ast
from pathlib import Path

import confluent_kafka
import pytest

from casewatch.errors import KafkaFailure
from casewatch.kafka.errors import is_fatal, kafka_errors, raise_if_fatal, reason, to_casewatch

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "casewatch"
MAPPING = PACKAGE / "kafka" / "errors.py"


def kafka_exception(code: int, *, fatal: bool = False) -> confluent_kafka.KafkaException:
    error = confluent_kafka.KafkaError(code, "broker said no", fatal=fatal)
    return confluent_kafka.KafkaException(error)


def test_an_error_becomes_a_kafka_failure_naming_what_failed_and_chained_to_it() -> None:
    original = kafka_exception(confluent_kafka.KafkaError._TRANSPORT)
    with pytest.raises(KafkaFailure) as raised, kafka_errors("cannot start the consumer"):
        raise original
    assert str(raised.value) == "cannot start the consumer: broker said no"
    assert raised.value.__cause__ is original


@pytest.mark.parametrize(
    "code",
    [
        confluent_kafka.KafkaError._FENCED,
        confluent_kafka.KafkaError.PRODUCER_FENCED,
        confluent_kafka.KafkaError.INVALID_PRODUCER_EPOCH,
    ],
)
def test_a_fenced_producer_is_named_as_such(code: int) -> None:
    failure = to_casewatch(kafka_exception(code), "transaction failed")
    assert str(failure).startswith("fenced by a newer instance with the same transactional id")


def test_a_kept_failure_stays_chained_to_its_cause() -> None:
    original = kafka_exception(confluent_kafka.KafkaError._STATE, fatal=True)
    assert to_casewatch(original, "commit on revoke failed").__cause__ is original


def test_fatal_and_reason_of_errors_with_and_without_a_kafka_error() -> None:
    assert is_fatal(kafka_exception(confluent_kafka.KafkaError._FATAL, fatal=True))
    assert not is_fatal(kafka_exception(confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS))
    bare = confluent_kafka.KafkaException("plain message")
    assert not is_fatal(bare)
    assert reason(bare) == "plain message"


def test_a_fatal_message_error_stops_and_a_transient_one_does_not() -> None:
    raise_if_fatal(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT), "consume")
    with pytest.raises(KafkaFailure, match=r"^consume: "):
        raise_if_fatal(
            confluent_kafka.KafkaError(confluent_kafka.KafkaError._FATAL, fatal=True), "consume"
        )


def unpacks_args(tree: ast.AST) -> list[int]:
    """Lines that read ``<something>.args``: how a KafkaError is taken out of its exception."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "args"
    ]


def test_no_module_but_the_mapping_unpacks_an_exception() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != MAPPING and (lines := unpacks_args(ast.parse(path.read_text(encoding="utf-8"))))
    }
    assert offenders == {}
    assert unpacks_args(ast.parse(MAPPING.read_text(encoding="utf-8")))
