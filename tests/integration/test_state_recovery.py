"""Open cases survive crashes: state changelog, restore on assignment, out-of-range offsets."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from tests.integration.daemon_harness import (
    QUIET,
    DaemonProcess,
    case_events,
    committed_and_end,
    evaluations,
    outputs_after_catch_up,
    produce_events,
    read_records,
    uncommitted,
    wait_for_outputs,
)
from tests.integration.state_checks import assert_like_an_uninterrupted_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# A short session: a killed member leaves the group quickly, so its partitions move on.
FAST_GROUP = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}


def test_sigkill_at_several_points_loses_nothing_and_changes_no_score(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(1500)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, commit_interval_seconds=0.2, **FAST_GROUP
    ).start()
    producer = threading.Thread(
        target=produce_events, args=(kafka_bootstrap, topics["input"], events, 2500)
    )
    kills = []
    try:
        daemon.wait_ready()
        producer.start()
        for share in (0.15, 0.4, 0.7):
            wait_for_outputs(kafka_bootstrap, topics, share * len(cases), daemon)
            daemon.stop(signal.SIGKILL)
            kills.append(uncommitted(kafka_bootstrap, topics["group"], topics["input"]))
            daemon.start()
            daemon.wait_ready(timeout=60)
        producer.join()
        published = outputs_after_catch_up(kafka_bootstrap, topics, daemon)
        restored = [e for e in daemon.log_events() if e.get("event") == "partitions_restored"]
    finally:
        producer.join()
        daemon.kill()

    assert all(backlog > 0 for backlog in kills), f"a kill found no input left: {kills}"
    assert restored, "the restarted daemon restored nothing"
    assert_like_an_uninterrupted_run(events, published, model_path)


def test_restore_picks_up_cases_left_open_by_a_graceful_stop(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(60)
    # Stop half-way through every case: the first halves are in the changelog, not in memory.
    lengths = Counter(e.case_id for e in events)
    seen: Counter[str] = Counter()
    first, rest = [], []
    for event in events:
        seen[event.case_id] += 1
        (first if seen[event.case_id] <= lengths[event.case_id] // 2 else rest).append(event)
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], first)
        deadline = time.monotonic() + 30
        while True:
            committed, ends = committed_and_end(kafka_bootstrap, topics["group"], topics["input"])
            if committed == ends:
                break
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
        assert daemon.stop() == 0
        changelog = read_records(kafka_bootstrap, topics["changelog"], until=1, timeout=10)
        daemon.start()
        daemon.wait_ready(timeout=60)
        produce_events(kafka_bootstrap, topics["input"], rest)
        published = evaluations(
            read_records(kafka_bootstrap, topics["output"], until=60, timeout=60)
        )
    finally:
        daemon.kill()

    assert changelog, "no state was written to the changelog"
    counts = assert_like_an_uninterrupted_run(events, published, model_path)
    assert set(counts.values()) == {1}


def commit_offsets(bootstrap: str, group: str, topic: str, offset: int) -> None:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, **QUIET}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [confluent_kafka.TopicPartition(topic, p, offset) for p in partitions]
        consumer.commit(offsets=wanted, asynchronous=False)
    finally:
        consumer.close()


@pytest.mark.parametrize("policy", ["earliest", "fail"])
def test_committed_offset_outside_the_log_follows_the_policy(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path, policy: str
) -> None:
    events = case_events(20)
    produce_events(kafka_bootstrap, topics["input"], events)
    commit_offsets(kafka_bootstrap, topics["group"], topics["input"], 1_000_000)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, offset_out_of_range=policy
    ).start()
    try:
        if policy == "fail":
            assert daemon.process is not None
            code = daemon.process.wait(timeout=60)
            assert code == 1
            assert "outside the log" in daemon.log_text()
            return
        daemon.wait_ready(timeout=60)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=20))
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()
    assert {e.case_id for e in published} == {e.case_id for e in events}
    assert "casewatch_offsets_out_of_range_total 4.0" in metrics
    assert any(e.get("event") == "committed_offset_out_of_range" for e in daemon.log_events())
