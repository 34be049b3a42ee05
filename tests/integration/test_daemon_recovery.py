"""Restarts lose no evaluation; idle and surplus cases leave memory with an evaluation."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter, defaultdict
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _records_in(bootstrap: str, topics: dict[str, str], name: str) -> int:
    return sum(committed_and_end(bootstrap, topics["group"], topics[name])[1])


def test_no_evaluation_is_lost_when_the_daemon_is_killed_mid_stream(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(2000)
    cases = {e.case_id for e in events}
    # A short session: the killed member leaves the group quickly, so its partitions move on.
    daemon = DaemonProcess(
        kafka_bootstrap,
        topics,
        model_path,
        tmp_path,
        commit_interval_seconds=0.2,
        kafka__session_timeout_ms=6000,
        kafka__heartbeat_interval_ms=500,
    ).start()
    producer = threading.Thread(
        target=produce_events, args=(kafka_bootstrap, topics["input"], events, 4000)
    )
    try:
        daemon.wait_ready()
        producer.start()
        deadline = time.monotonic() + 30
        while _records_in(kafka_bootstrap, topics, "output") < 200 < len(cases):
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.05)
        daemon.stop(signal.SIGKILL)
        before_restart = _records_in(kafka_bootstrap, topics, "output")
        daemon.start()
        producer.join()
        published = evaluations(
            read_records(kafka_bootstrap, topics["output"], until=len(cases), timeout=60)
        )
    finally:
        producer.join()
        daemon.kill()

    assert 0 < before_restart < len(cases), "the kill did not land mid-stream"
    lengths = Counter(e.case_id for e in events)
    closed: dict[str, dict[str, int]] = defaultdict(dict)
    for evaluation in published:
        if evaluation.closed:
            closed[evaluation.case_id][evaluation.evaluation_id] = evaluation.n_events
    assert set(closed) == cases
    # Every case has an evaluation over all of its events, and one id per distinct input: a
    # re-read case repeats its evaluation_id; only a case that had closed before the last commit
    # but ended past it is seen again as a shorter tail, under another id.
    assert all(lengths[case] in by_id.values() for case, by_id in closed.items())
    for case, by_id in closed.items():
        assert all(n <= lengths[case] for n in by_id.values())
    assert len(published) >= len(cases)


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
