"""Evaluations the daemon publishes for closed cases and for every event, and its shutdown."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    committed_and_end,
    evaluations,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def test_every_closed_case_gets_exactly_one_closed_evaluation(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(1000)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=len(cases)))
    finally:
        daemon.kill()

    closed = Counter(e.case_id for e in published if e.closed)
    assert set(closed) == cases
    assert set(closed.values()) == {1}
    assert {e.trigger for e in published} == {"close"}
    lengths = Counter(e.case_id for e in events)
    assert all(e.n_events == lengths[e.case_id] for e in published)
    assert all(e.source.topic == topics["input"] for e in published)


def test_every_event_policy_emits_one_evaluation_per_event(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(200)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, score_policy="every-event"
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=len(events)))
    finally:
        daemon.kill()

    assert len(published) == len(events)
    per_case = Counter(e.case_id for e in published)
    assert per_case == Counter(e.case_id for e in events)
    closing = [e for e in published if e.closed]
    assert len(closing) == len(per_case)
    assert {e.trigger for e in closing} == {"close"}
    assert {e.trigger for e in published if not e.closed} == {"event"}


def test_sigterm_delivers_commits_and_exits_zero(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(500)
    cases = {e.case_id for e in events}
    # A long commit interval: only the shutdown checkpoint can have committed everything.
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, commit_interval_seconds=3600
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        read_records(kafka_bootstrap, topics["output"], until=len(cases), grace=0)
        code = daemon.stop(signal.SIGTERM, timeout=20)
    finally:
        daemon.kill()

    assert code == 0, daemon.log_text()
    committed, ends = committed_and_end(kafka_bootstrap, topics["group"], topics["input"])
    assert sum(ends) == len(events)
    assert [max(c, 0) for c in committed] == ends
    assert "daemon_stopped" in daemon.log_text()


def test_back_pressure_pauses_consumption_without_losing_outputs(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(200)
    # Far fewer undelivered outputs allowed than one batch produces: the loop must pause.
    daemon = DaemonProcess(
        kafka_bootstrap,
        topics,
        model_path,
        tmp_path,
        score_policy="every-event",
        max_pending_outputs=20,
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=len(events)))
    finally:
        daemon.kill()

    assert len(published) == len(events)
    assert Counter(e.case_id for e in published) == Counter(e.case_id for e in events)
