"""Idle and surplus cases leave memory with an evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    evaluations,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_idle_cases_time_out_with_an_evaluation(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(30, close_marker=False)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, idle_ttl_seconds=1
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=len(cases)))
    finally:
        daemon.kill()

    assert {e.trigger for e in published} == {"timeout"}
    assert {e.case_id for e in published} == cases
    assert len(published) == len(cases)


def test_cases_beyond_max_open_cases_are_evicted_with_an_evaluation(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(100, close_marker=False)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, max_open_cases=10, idle_ttl_seconds=0
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        # The 10 most recent cases stay open: nothing closes them.
        published = evaluations(
            read_records(kafka_bootstrap, topics["output"], until=len(cases) - 10)
        )
    finally:
        daemon.kill()

    assert published
    assert {e.trigger for e in published} == {"evicted"}
    assert len({e.case_id for e in published}) >= len(cases) - 10
