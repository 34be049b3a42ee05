"""processing_guarantee=exactly_once: one transaction per checkpoint; zombies are fenced.

Both need a broker whose read_committed consumers filter aborted transactions and which fences
producers by epoch; librdkafka's embedded mock cluster does neither, so there they skip.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Broker
from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    committed_and_end,
    evaluations,
    produce_events,
    read_records,
)
from tests.integration.state_checks import assert_like_an_uninterrupted_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXACTLY_ONCE = {
    "processing_guarantee": "exactly_once",
    "commit_interval_seconds": 0.5,
    "kafka__session_timeout_ms": 6000,
    "kafka__heartbeat_interval_ms": 500,
}


@pytest.fixture
def transactional_broker(kafka_broker: Broker) -> str:
    if kafka_broker.embedded:
        pytest.skip(
            "the embedded broker neither filters aborted transactions for read_committed "
            "consumers nor fences producers; run with KAFKA_BOOTSTRAP_SERVERS or Docker"
        )
    return kafka_broker.bootstrap_servers


def test_each_closed_case_is_published_exactly_once_across_a_crash(
    transactional_broker: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(800)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(transactional_broker, topics, model_path, tmp_path, **EXACTLY_ONCE)
    producer = threading.Thread(
        target=produce_events, args=(transactional_broker, topics["input"], events, 1500)
    )
    try:
        daemon.start().wait_ready(60)
        producer.start()
        deadline = time.monotonic() + 60
        while sum(committed_and_end(transactional_broker, topics["group"], topics["input"])[0]) < (
            len(events) // 3
        ):
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
        daemon.stop(signal.SIGKILL)
        daemon.start().wait_ready(60)
        producer.join()
        published = evaluations(
            read_records(
                transactional_broker, topics["output"], until=len(cases), timeout=90,
                isolation="read_committed",
            )
        )  # fmt: skip
    finally:
        producer.join()
        daemon.kill()
    counts = assert_like_an_uninterrupted_run(events, published, model_path)
    assert set(counts.values()) == {1}, "a closed case was published more than once"


def test_a_zombie_instance_is_fenced_and_stops(
    transactional_broker: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    settings = {**EXACTLY_ONCE, "transactional_id": f"{topics['group']}-instance"}
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = DaemonProcess(transactional_broker, topics, model_path, tmp_path / "old", **settings)
    new = DaemonProcess(transactional_broker, topics, model_path, tmp_path / "new", **settings)
    try:
        old.start().wait_ready(60)
        new.start().wait_ready(60)
        produce_events(transactional_broker, topics["input"], case_events(100))
        assert old.process is not None
        code = old.process.wait(timeout=60)
    finally:
        old.kill()
        new.kill()
    assert code == 1
    assert "fenced" in old.log_text()


def test_transactions_carry_outputs_state_and_offsets(
    kafka_broker: Broker, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Runs on every broker: without a crash no transaction aborts, so even the embedded one
    shows the transactional path publishing everything exactly once."""
    kafka_bootstrap = kafka_broker.bootstrap_servers
    events = case_events(200)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path, **EXACTLY_ONCE)
    try:
        daemon.start().wait_ready(60)
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(
            read_records(
                kafka_bootstrap, topics["output"], until=len(cases), timeout=60,
                isolation="read_committed",
            )
        )  # fmt: skip
        assert daemon.stop() == 0
        committed, ends = committed_and_end(kafka_bootstrap, topics["group"], topics["input"])
    finally:
        daemon.kill()
    counts = assert_like_an_uninterrupted_run(events, published, model_path)
    assert set(counts.values()) == {1}
    # The embedded broker accepts offsets sent to a transaction but does not store them.
    if not kafka_broker.embedded:
        assert committed == ends
