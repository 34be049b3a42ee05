"""Start-up checks that run before the daemon consumes anything.

- Unknown ``CASEWATCH_*`` variables are warned about by name, with the closest known name: a
  misspelt setting would otherwise be silently ignored.
- The input topic is looked up and the changelog made to match it (``casewatch.state.changelog``);
  the alert topic, when set, is created if missing (``casewatch.daemon.alert_topic``).
  A broker that cannot be reached, or an input topic that does not exist yet, is retried with
  exponential backoff up to ``startup_timeout_seconds``; each retry logs the cause librdkafka
  reported as one structured line (``startup_waiting``), then start-up fails with one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from casewatch.daemon.alert_topic import ensure_alert_topic
from casewatch.errors import KafkaFailure
from casewatch.kafka.reachability import BrokersUnreachable, cluster_metadata
from casewatch.settings import closest_env_name, unknown_env_names
from casewatch.state.changelog import ChangelogTopic, ensure_changelog
from casewatch.telemetry.logging import get_logger

log = get_logger(__name__)

_FIRST_RETRY_SECONDS = 0.5
_LONGEST_RETRY_SECONDS = 8.0
_ATTEMPT_SECONDS = 5.0


def warn_unknown_env(environ: Mapping[str, str]) -> list[str]:
    """Log one warning per ``CASEWATCH_*`` variable that sets nothing; returns their names."""
    unknown = unknown_env_names(environ)
    for name in unknown:
        log.warning("unknown_setting", variable=name, closest=closest_env_name(name))
    return unknown


class _NotReady(Exception):
    """The broker or the input topic is not there yet; worth another attempt."""

    def __init__(self, problem: str, cause: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.cause = cause


def prepare_topics(
    input_topic: str,
    changelog: ChangelogTopic,
    admin_config: dict[str, Any],
    *,
    timeout: float,
    alert_topic: str | None = None,
    stopping: Callable[[], bool] = lambda: False,
    heartbeat: Callable[[], None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int | None:
    """Check the input topic and the changelog; returns the input's partition count.

    Returns None when ``stopping`` turns true while waiting: a stop requested during start-up
    is a clean stop. ``heartbeat`` is called while waiting: waiting is what the process should
    be doing then, so the liveness probe must not fail. Raises KafkaFailure once the broker or
    the input topic stayed unavailable past ``timeout`` seconds, ConfigError when the
    changelog cannot match the input.
    """
    bound = timeout
    deadline = clock() + bound
    delay = _FIRST_RETRY_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            left = deadline - clock()
            wait_at_most = min(_ATTEMPT_SECONDS, max(left / 3, 0.5))
            return _attempt(input_topic, changelog, admin_config, wait_at_most, alert_topic)
        except _NotReady as exc:
            left = deadline - clock()
            if left <= 0:
                raise KafkaFailure(
                    f"{exc.problem} (gave up after {attempt} attempts in {bound:g} s): {exc.cause}"
                ) from None
            wait = min(delay, left)
            log.warning(
                "startup_waiting",
                problem=exc.problem,
                cause=exc.cause,
                attempt=attempt,
                retry_in_seconds=round(wait, 2),
                gives_up_in_seconds=round(left, 1),
            )
            # In short steps, so a SIGTERM during the wait is served at once.
            until = clock() + wait
            while not stopping() and (left := until - clock()) > 0:
                heartbeat()
                sleep(min(left, 0.1))
            if stopping():
                return None
            delay = min(delay * 2, _LONGEST_RETRY_SECONDS)


def _attempt(
    input_topic: str,
    changelog: ChangelogTopic,
    admin_config: dict[str, Any],
    timeout: float,
    alert_topic: str | None = None,
) -> int:
    try:
        admin, metadata = cluster_metadata(admin_config, timeout=timeout)
    except BrokersUnreachable as exc:
        raise _NotReady(exc.problem, exc.cause) from None
    topic = metadata.topics.get(input_topic)
    if topic is None or topic.error is not None or not topic.partitions:
        cause = "not in the cluster's metadata" if topic is None else str(topic.error)
        raise _NotReady(f"input topic {input_topic!r} is not available", cause)
    partitions = len(topic.partitions)
    ensure_changelog(changelog, admin_config, admin, metadata, partitions, timeout)
    if alert_topic is not None:
        ensure_alert_topic(alert_topic, admin_config, admin, metadata, partitions, timeout)
    return partitions
