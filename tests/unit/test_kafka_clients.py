"""librdkafka's log lines become structured events, levels mapped, repeats held back."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from casewatch.kafka import clients

PACKAGE = Path(clients.__file__).parents[1]
REFUSED = (
    "[thrd:127.0.0.1:1/bootstrap]: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: "
    "Connection refused (after {}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def librdkafka_line(logger: logging.Logger, text: str, level: int = logging.ERROR) -> None:
    # The exact call confluent-kafka makes for each line it hands over.
    logger.log(level, "%s [%s] %s", "FAIL", "casewatch-producer#producer-1", text)


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        (0, logging.CRITICAL),
        (2, logging.CRITICAL),
        (3, logging.ERROR),
        (4, logging.WARNING),
        (5, logging.INFO),
        (6, logging.INFO),
        (7, logging.DEBUG),
    ],
)
def test_syslog_severities_map_to_logging_levels(severity: int, level: int) -> None:
    assert clients.logging_level(severity) == level


@pytest.mark.parametrize(
    ("level", "severity"),
    [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3)],
)
def test_the_process_level_sets_the_client_log_level(level: int, severity: int) -> None:
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        config = clients.with_logger({"bootstrap.servers": "x:1"})
    finally:
        root.setLevel(before)
    assert config["log_level"] == severity
    assert isinstance(config["logger"], clients.ClientLogger)


def test_an_explicit_client_log_level_is_kept() -> None:
    assert clients.with_logger({"log_level": 0})["log_level"] == 0


def test_a_line_becomes_one_event_with_client_and_facility() -> None:
    logger = clients.ClientLogger()
    with capture_logs() as events:
        librdkafka_line(logger, REFUSED.format(0), logging.ERROR)
    assert events == [
        {
            "event": "kafka_log",
            "log_level": "error",
            "client": "casewatch-producer#producer-1",
            "facility": "FAIL",
            "message": REFUSED.format(0),
        }
    ]


def test_repeats_are_held_back_and_counted() -> None:
    clock = Clock()
    logger = clients.ClientLogger(repeat_interval=30.0, clock=clock)
    with capture_logs() as events:
        for second in range(95):  # a reconnect every second, timings varying
            librdkafka_line(logger, REFUSED.format(second % 7))
            clock.now += 1.0
    assert len(events) == 4  # at 0, 30, 60 and 90 s
    assert "repeated" not in events[0]
    assert [e["repeated"] for e in events[1:]] == [29, 29, 29]


def test_different_lines_are_not_held_back() -> None:
    logger = clients.ClientLogger(clock=Clock())
    with capture_logs() as events:
        librdkafka_line(logger, "broker one down")
        librdkafka_line(logger, "broker two down")
        logger.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "casewatch-producer#producer-1", "x")
    assert [e["message"] for e in events] == ["broker one down", "broker two down", "x"]


def test_a_line_of_another_shape_is_still_logged() -> None:
    with capture_logs() as events:
        clients.ClientLogger().log(logging.INFO, "plain %s", "text")
    assert events[0]["message"] == "plain text"


def test_a_real_client_logs_structured_events_when_polled() -> None:
    producer = clients.producer({"bootstrap.servers": "127.0.0.1:1", "client.id": "probe"})
    with capture_logs() as events:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            producer.poll(0.2)
    refused = [e for e in events if e.get("facility") == "FAIL"]
    assert refused, events
    assert refused[0]["event"] == "kafka_log"
    assert refused[0]["client"].startswith("probe#producer-")
    assert refused[0]["log_level"] == "error"
    assert "Connection refused" in refused[0]["message"]
    # librdkafka reconnects every few hundred ms; identical failures are held back.
    assert len(refused) <= 2


_CONSTRUCTION = re.compile(r"\b(?:confluent_kafka\.)?(?:Producer|Consumer|AdminClient)\(")


def test_every_client_is_created_through_the_logging_constructors() -> None:
    direct = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "clients.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _CONSTRUCTION.search(line)
    ]
    assert direct == []


def test_a_plain_logger_in_the_config_is_replaced() -> None:
    config = clients.with_logger({"logger": logging.getLogger("plain")})
    assert isinstance(config["logger"], clients.ClientLogger)
