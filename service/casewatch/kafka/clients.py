"""Every librdkafka client casewatch creates, with its log routed through structlog.

librdkafka writes its own lines (``%3|1764...|FAIL|rdkafka#producer-1| ...``) straight to stderr
unless a client is given a ``logger``; those lines break a JSON log stream and repeat every
reconnect. ``producer``, ``consumer`` and ``admin`` are the only constructors casewatch uses
(a unit test keeps it so): each hands librdkafka a ``ClientLogger`` that turns every line into
one structured event (``kafka_log`` with ``client``, ``facility`` and ``message`` fields) and
lets one identical line through per ``repeat_interval`` seconds, counting the others.

librdkafka queues log lines for the application when a logger is set and hands them over in
``poll``/``consume``/``flush``, so a client's lines appear when it is served.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient

from casewatch.telemetry.logging import get_logger

log = get_logger("casewatch.librdkafka")

# syslog severities (librdkafka's ``log_level``) against the standard library's levels.
_SYSLOG_TO_LOGGING = {
    0: logging.CRITICAL,  # emerg
    1: logging.CRITICAL,  # alert
    2: logging.CRITICAL,  # crit
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,  # notice
    6: logging.INFO,
    7: logging.DEBUG,
}
_REPEAT_INTERVAL_SECONDS = 30.0
# A reconnect loop varies only in timings and counters ("after 3ms", "2 identical error(s)").
_NUMBERS = re.compile(r"\d+")
_MAX_TRACKED_LINES = 1024


def logging_level(syslog_level: int) -> int:
    """The ``logging`` level of a syslog severity (0 emerg ... 7 debug)."""
    return _SYSLOG_TO_LOGGING[min(max(syslog_level, 0), 7)]


def syslog_level(level: int) -> int:
    """The most verbose syslog severity whose lines ``level`` lets through."""
    allowed = [s for s, mapped in _SYSLOG_TO_LOGGING.items() if mapped >= level]
    return max(allowed, default=0)


class ClientLogger(logging.Logger):
    """The ``logger`` librdkafka calls as ``log(level, "%s [%s] %s", facility, client, text)``.

    A ``logging.Logger`` because confluent-kafka asks for one; nothing reaches its handlers:
    each line becomes a structlog event, so it shares the process's format and level filter.
    """

    def __init__(
        self,
        *,
        repeat_interval: float = _REPEAT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("casewatch.librdkafka")
        self._repeat_interval = repeat_interval
        self._clock = clock
        # line key -> (when it was last let through, copies held back since)
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        facility, client, text = _fields(msg, args)
        name = client.split("#", 1)[0]
        key = (name, facility, _NUMBERS.sub("N", text))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._repeat_interval:
            self._seen[key] = (last[0], last[1] + 1)
            return
        if len(self._seen) >= _MAX_TRACKED_LINES:
            self._seen.clear()
        self._seen[key] = (now, 0)
        fields: dict[str, Any] = {"client": client, "facility": facility, "message": text}
        if last is not None and last[1]:
            fields["repeated"] = last[1]
        log.log(level, "kafka_log", **fields)


def _fields(msg: object, args: tuple[object, ...]) -> tuple[str, str, str]:
    if len(args) == 3:
        facility, client, text = (str(a) for a in args)
        return facility, client, text
    # Any other shape is still one line, never an exception inside librdkafka's callback.
    text = str(msg) % args if args else str(msg)
    return "", "", text


def with_logger(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with a ``ClientLogger`` and, unless set, the process's log level.

    The logger replaces any other: a plain ``logging.Logger`` would print librdkafka's lines
    unstructured and every repeat. An explicit ``log_level`` (a caller that reports the cause
    itself, or a ``CASEWATCH_KAFKA__LOG_LEVEL`` property) is kept.
    """
    routed = {**config, "logger": ClientLogger()}
    routed.setdefault("log_level", syslog_level(logging.getLogger().getEffectiveLevel()))
    return routed


def producer(config: dict[str, Any]) -> Any:
    """A ``confluent_kafka.Producer`` whose log goes through structlog."""
    return confluent_kafka.Producer(with_logger(config))


def consumer(config: dict[str, Any]) -> Any:
    """A ``confluent_kafka.Consumer`` whose log goes through structlog."""
    return confluent_kafka.Consumer(with_logger(config))


def admin(config: dict[str, Any]) -> Any:
    """An ``AdminClient`` whose log goes through structlog; served by its ``poll``."""
    return AdminClient(with_logger(config))
