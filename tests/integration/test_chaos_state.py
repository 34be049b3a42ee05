"""Case state under hostile operations: downtime, a second group, random kills, a frozen broker.

Each test states the promise it checks in its docstring and prints its figures (``-s`` shows
them): cases, kills or freeze seconds, lost cases and score mismatches.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from casewatch.kafka.broker import ensure_topics
from tests.conftest import broker_process
from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    committed_and_end,
    outputs_after_catch_up,
    produce_events,
    uncommitted,
    wait_for_outputs,
)
from tests.integration.state_checks import assert_like_an_uninterrupted_run, halves

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(240)]

# A short session: a killed member leaves the group quickly, so its partitions move on.
FAST_GROUP = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}
KILL_SEED = 20261201


def wait_until_committed(bootstrap: str, topics: dict[str, str], daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + 60
    while True:
        committed, ends = committed_and_end(bootstrap, topics["group"], topics["input"])
        if [max(c, 0) for c in committed] == ends:
            return
        assert time.monotonic() < deadline, daemon.log_text()
        time.sleep(0.1)


def restored_open_cases(daemon: DaemonProcess) -> int:
    """Open cases after the last restore the daemon logged (0 when it restored nothing)."""
    restored = [e for e in daemon.log_events() if e.get("event") == "partitions_restored"]
    return int(restored[-1]["open_cases"]) if restored else 0


def test_downtime_longer_than_the_ttl_splits_no_case(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """A restart later than the idle TTL neither times out nor splits any open case.

    Every case is half-way through when the daemon is killed; the rest of each case is queued
    while it is down for 1.5 x the TTL. Each case must still close once, over all its events,
    with the score of an uninterrupted run, and no case may get a timeout evaluation.
    """
    ttl, downtime = 10.0, 15.0
    events = case_events(300)
    first, rest = halves(events)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, idle_ttl_seconds=ttl, **FAST_GROUP
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], first)
        wait_until_committed(kafka_bootstrap, topics, daemon)
        daemon.stop(signal.SIGKILL)
        produce_events(kafka_bootstrap, topics["input"], rest)
        time.sleep(downtime)
        daemon.start()
        daemon.wait_ready(timeout=60)
        published = outputs_after_catch_up(kafka_bootstrap, topics, daemon)
        restored = restored_open_cases(daemon)
    finally:
        daemon.kill()

    timeouts = [e for e in published if e.trigger == "timeout"]
    print(
        f"downtime: cases={len({e.case_id for e in events})} ttl={ttl:g}s down={downtime:g}s "
        f"restored={restored} timeouts={len(timeouts)}"
    )
    assert restored > 0, "the restarted daemon restored no open case"
    assert not timeouts, f"{len(timeouts)} cases timed out: {timeouts[:3]}"
    counts = assert_like_an_uninterrupted_run(events, published, model_path)
    assert set(counts.values()) == {1}


def test_two_groups_on_one_topic_share_no_state(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """A second consumer group on the same input neither sees nor disturbs the first's cases.

    Group A stops with every case half-way; group B then starts on the same topic from its end
    and reads the rest. B must restore none of A's cases (each of its evaluations covers only
    what B read), and A, restarted afterwards, must still close every case over all its events
    with the score of an uninterrupted run: B's closes did not erase A's state.
    """
    events = case_events(60)
    first, rest = halves(events)
    shadow = {**topics, "group": f"{topics['group']}-b", "output": f"{topics['output']}-b"}
    ensure_topics(
        kafka_bootstrap, [shadow["output"], f"{shadow['group']}--{topics['input']}--changelog"]
    )
    group_a = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path / "a")
    group_b = DaemonProcess(
        kafka_bootstrap, shadow, model_path, tmp_path / "b", auto_offset_reset="latest"
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        group_a.start().wait_ready()
        produce_events(kafka_bootstrap, topics["input"], first)
        wait_until_committed(kafka_bootstrap, topics, group_a)
        assert group_a.stop() == 0
        group_b.start().wait_ready(timeout=60)
        time.sleep(2)  # B's "latest" start offsets are resolved before the rest arrives
        produce_events(kafka_bootstrap, topics["input"], rest)
        seen_by_b = outputs_after_catch_up(kafka_bootstrap, shadow, group_b)
        restored_by_b = restored_open_cases(group_b)
        assert group_b.stop() == 0
        group_a.start().wait_ready(timeout=60)
        seen_by_a = outputs_after_catch_up(kafka_bootstrap, topics, group_a)
    finally:
        group_a.kill()
        group_b.kill()

    rest_lengths = Counter(e.case_id for e in rest)
    too_long = [e for e in seen_by_b if e.n_events > rest_lengths[e.case_id]]
    print(
        f"two groups: cases={len(rest_lengths)} restored_by_b={restored_by_b} "
        f"b_evaluations={len(seen_by_b)} b_with_a_state={len(too_long)}"
    )
    assert restored_by_b == 0
    assert seen_by_b, "group B evaluated nothing"
    assert not too_long, f"group B scored events it never read: {too_long[:3]}"
    counts = assert_like_an_uninterrupted_run(events, seen_by_a, model_path)
    assert set(counts.values()) == {1}


def test_sigkill_at_random_points_changes_no_score(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """SIGKILL at seeded random points mid-stream loses no case and changes no score.

    While events stream in, the daemon is killed four times, each a random 0.3-2.5 s after it
    became ready again (seed ``KILL_SEED``), mid-batch and mid-checkpoint alike. Every case must
    close over all its events with the score of an uninterrupted run.
    """
    rng = random.Random(KILL_SEED)
    events = case_events(1200)
    cases = {e.case_id for e in events}
    delays = [rng.uniform(0.3, 2.5) for _ in range(4)]
    # Static membership, as deployed: the restarted instance takes its partitions straight back.
    daemon = DaemonProcess(
        kafka_bootstrap,
        topics,
        model_path,
        tmp_path,
        commit_interval_seconds=0.2,
        kafka__group_instance_id="chaos-0",
        **FAST_GROUP,
    ).start()
    # Slow enough that the stream is still flowing at the last kill.
    producer = threading.Thread(
        target=produce_events, args=(kafka_bootstrap, topics["input"], events, 250)
    )
    backlogs = []
    try:
        daemon.wait_ready()
        producer.start()
        for delay in delays:
            time.sleep(delay)
            assert producer.is_alive(), "the stream ended before every kill"
            daemon.stop(signal.SIGKILL)
            backlogs.append(uncommitted(kafka_bootstrap, topics["group"], topics["input"]))
            daemon.start()
            daemon.wait_ready(timeout=60)
        producer.join()
        published = outputs_after_catch_up(kafka_bootstrap, topics, daemon)
    finally:
        producer.join()
        daemon.kill()

    print(
        f"random kills: seed={KILL_SEED} kills={len(delays)} after="
        f"{[round(d, 2) for d in delays]}s uncommitted_at_kill={backlogs} cases={len(cases)} "
        f"events={len(events)}"
    )
    assert_like_an_uninterrupted_run(events, published, model_path)


@pytest.fixture
def own_broker() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An embedded broker in its own process, for this test alone: it gets frozen."""
    with broker_process() as broker:
        yield broker


def test_a_broker_freeze_loses_nothing(
    own_broker: tuple[str, subprocess.Popen[str]],
    topic_names: dict[str, str],
    model_path: Path,
    tmp_path: Path,
) -> None:
    """A broker that stops answering mid-stream (SIGSTOP for 5 s, then SIGCONT) loses nothing.

    Events keep being produced across the freeze; once the broker answers again every case must
    close over all its events with the score of an uninterrupted run.
    """
    bootstrap, broker = own_broker
    names = ("input", "output", "dlq", "changelog")
    ensure_topics(bootstrap, [topic_names[name] for name in names])
    freeze = 5.0
    events = case_events(800)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(bootstrap, topic_names, model_path, tmp_path).start()
    producer = threading.Thread(
        target=produce_events, args=(bootstrap, topic_names["input"], events, 2000)
    )
    try:
        daemon.wait_ready()
        producer.start()
        wait_for_outputs(bootstrap, topic_names, 0.3 * len(cases), daemon)
        broker.send_signal(signal.SIGSTOP)
        time.sleep(freeze)
        broker.send_signal(signal.SIGCONT)
        producer.join()
        published = outputs_after_catch_up(bootstrap, topic_names, daemon)
        alive = daemon.process is not None and daemon.process.poll() is None
    finally:
        broker.send_signal(signal.SIGCONT)
        producer.join()
        daemon.kill()

    print(f"broker freeze: seconds={freeze:g} cases={len(cases)} daemon_alive={alive}")
    assert alive, "the daemon stopped during the freeze"
    assert_like_an_uninterrupted_run(events, published, model_path)


def test_sigterm_with_outputs_the_frozen_broker_cannot_take_exits_1(
    own_broker: tuple[str, subprocess.Popen[str]],
    topic_names: dict[str, str],
    model_path: Path,
    tmp_path: Path,
) -> None:
    """A stop that cannot deliver its outputs says so: exit 1 and one line naming them.

    Open cases time out while the broker is frozen (a quiet partition's stream time follows the
    running clock), so their evaluations cannot be delivered; SIGTERM must then end with exit
    code 1 after the shutdown timeout, not 0, so a supervisor sees the stop was not clean.
    """
    bootstrap, broker = own_broker
    names = ("input", "output", "dlq", "changelog")
    ensure_topics(bootstrap, [topic_names[name] for name in names])
    daemon = DaemonProcess(
        bootstrap, topic_names, model_path, tmp_path, idle_ttl_seconds=3, shutdown_timeout_seconds=2
    ).start()
    try:
        daemon.wait_ready()
        produce_events(bootstrap, topic_names["input"], case_events(30, close_marker=False))
        wait_until_committed(bootstrap, topic_names, daemon)
        broker.send_signal(signal.SIGSTOP)
        time.sleep(5)  # past the TTL: the open cases time out into the frozen broker
        code = daemon.stop(timeout=60)
    finally:
        broker.send_signal(signal.SIGCONT)
        daemon.kill()

    last = daemon.log_text().strip().splitlines()[-1]
    print(f"sigterm into a frozen broker: exit={code} last_line={last!r}")
    assert code == 1
    failure = json.loads(last)
    assert failure["event"] == "daemon_failed"
    assert failure["error"].startswith("stopped with ") and "undelivered" in failure["error"]
