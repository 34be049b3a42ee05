"""The alert topic against a broker: one opened alert per case that crosses the threshold (k in a
row), a closed update when it leaves, none for normal cases; neither lost nor repeated across a
SIGKILL before or after the checkpoint."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from casewatch.kafka.broker import ensure_topics
from casewatch.scoring.alerts import CaseAlert
from tests.conftest import Broker
from tests.integration.alert_checks import (
    decode_alerts,
    expected_alerts,
    flapping,
    keys,
    verdicts,
)
from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    committed_and_end,
    outputs_after_catch_up,
    produce_events,
    read_records,
    uncommitted,
)
from tests.integration.state_checks import halves
from tests.shifted_model import offsets_for, shifted_copy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# A short session: a killed member leaves the group quickly, so its partitions move on.
FAST_GROUP = {"kafka__session_timeout_ms": 6000, "kafka__heartbeat_interval_ms": 500}
# Long enough that no checkpoint commits before the kill.
NO_CHECKPOINT_YET = 60.0


@pytest.fixture
def alert_topics(kafka_broker: Broker, topics: dict[str, str]) -> dict[str, str]:
    """The test's topics plus an alert topic (created here: the embedded broker creates topics
    only by auto-creation, with 4 partitions)."""
    alerts = topics["output"].removesuffix("-out") + "-alerts"
    ensure_topics(
        kafka_broker.bootstrap_servers, [alerts], partitions=None if kafka_broker.embedded else 4
    )
    return {**topics, "alerts": alerts}


@pytest.fixture(scope="module")
def flapping_model(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session model, also judging every case anomalous at 2, 4, 5 and 6 events: cases the
    model finds normal flap (normal, anomalous, normal, anomalous x3, normal...)."""
    out = tmp_path_factory.mktemp("flapping") / "flapping.onnx"
    return shifted_copy(model_path, out, offsets_for({2, 4, 5, 6}, 8))


def alert_daemon(
    bootstrap: str, topics: dict[str, str], model: Path, log_dir: Path, k: int, **settings: Any
) -> DaemonProcess:
    return DaemonProcess(
        bootstrap, topics, model, log_dir,
        score_policy="every-event", alert_topic=topics["alerts"], alert_after=k, **settings,
    )  # fmt: skip


def read_alerts(
    bootstrap: str, topics: dict[str, str], until: int, **options: Any
) -> list[CaseAlert]:
    return decode_alerts(read_records(bootstrap, topics["alerts"], until=until, **options))


def alert_count(metrics: str, kind: str) -> float:
    found = re.search(rf'^casewatch_alerts_total\{{kind="{kind}"\}} (\S+)$', metrics, re.M)
    assert found, metrics
    return float(found.group(1))


@pytest.mark.parametrize(
    ("scorer", "alert_after"),
    [("model_path", 1), ("model_path", 3), ("flapping_model", 1), ("flapping_model", 3)],
)
def test_each_case_crossing_the_threshold_gets_one_opened_alert(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    alert_topics: dict[str, str],
    tmp_path: Path,
    scorer: str,
    alert_after: int,
) -> None:
    model: Path = request.getfixturevalue(scorer)
    events = case_events(120)
    flags = verdicts(model, events)
    expected = expected_alerts(flags, alert_after)
    opened = {case for case, kind, _ in expected if kind == "opened"}
    # The chosen cases show what the test is about: some alert, some never do, some flap.
    assert opened and (scorer == "flapping_model" or len(opened) < len(flags))
    if scorer == "flapping_model":
        assert sum(flapping(flags[case]) for case in opened) > len(opened) // 2
    daemon = alert_daemon(kafka_bootstrap, alert_topics, model, tmp_path, alert_after)
    try:
        daemon.start().wait_ready()
        produce_events(kafka_bootstrap, alert_topics["input"], events)
        published = outputs_after_catch_up(kafka_bootstrap, alert_topics, daemon)
        alerts = read_alerts(kafka_bootstrap, alert_topics, len(expected))
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()
    assert sorted(keys(alerts)) == sorted(expected)
    # An alert carries the very evaluation the output topic got, and the model's identity.
    by_id = {e.evaluation_id: e for e in published}
    for alert in alerts:
        assert msgspec.to_builtins(alert.evaluation) == msgspec.to_builtins(
            by_id[alert.evaluation.evaluation_id]
        )
        assert (alert.alert_after, alert.model) == (alert_after, alert.evaluation.model)
        assert alert.consecutive_anomalous >= (alert_after if alert.kind == "opened" else 0)
    for kind in ("opened", "closed"):
        assert alert_count(metrics, kind) == sum(k == kind for _, k, _ in expected)


def test_alerts_are_in_the_transaction_with_their_evaluations(
    kafka_bootstrap: str, alert_topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """Runs on every broker: without a crash no transaction aborts, so even the embedded one
    shows the transactional path publishing each alert once to read_committed consumers."""
    events = case_events(80)
    expected = expected_alerts(verdicts(model_path, events), 1)
    daemon = alert_daemon(
        kafka_bootstrap, alert_topics, model_path, tmp_path, 1,
        processing_guarantee="exactly_once", commit_interval_seconds=0.5,
    )  # fmt: skip
    try:
        daemon.start().wait_ready(60)
        produce_events(kafka_bootstrap, alert_topics["input"], events)
        alerts = read_alerts(
            kafka_bootstrap, alert_topics, len(expected), isolation="read_committed"
        )
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert sorted(keys(alerts)) == sorted(expected)


def test_a_kill_before_the_checkpoint_resends_the_same_alerts(
    kafka_bootstrap: str, alert_topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """At least once: the restarted daemon reads everything again and sends every alert again,
    with the same alert_id; none is lost and de-duplicating by id leaves exactly the expected."""
    events = case_events(60)
    expected = expected_alerts(verdicts(model_path, events), 1)
    daemon = alert_daemon(
        kafka_bootstrap, alert_topics, model_path, tmp_path, 1,
        commit_interval_seconds=NO_CHECKPOINT_YET, **FAST_GROUP,
    )  # fmt: skip
    try:
        daemon.start().wait_ready()
        produce_events(kafka_bootstrap, alert_topics["input"], events)
        before = read_alerts(kafka_bootstrap, alert_topics, len(expected))
        assert uncommitted(kafka_bootstrap, alert_topics["group"], alert_topics["input"]) == len(
            events
        ), "a checkpoint committed before the kill"
        daemon.stop(signal.SIGKILL)
        daemon.env["CASEWATCH_COMMIT_INTERVAL_SECONDS"] = "0.3"
        daemon.start().wait_ready(60)
        outputs_after_catch_up(kafka_bootstrap, alert_topics, daemon)
        alerts = read_alerts(kafka_bootstrap, alert_topics, 2 * len(expected))
    finally:
        daemon.kill()
    assert sorted(keys(before)) == sorted(expected)
    distinct = {alert.alert_id: (alert.case_id, alert.kind, alert.evaluation.n_events)
                for alert in alerts}  # fmt: skip
    assert sorted(distinct.values()) == sorted(expected)
    # Each was sent once before the kill and once more after it, under the same id.
    assert set(Counter(alert.alert_id for alert in alerts).values()) == {2}


def test_a_kill_after_the_checkpoint_does_not_alert_again(
    kafka_bootstrap: str, alert_topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """The checkpoint wrote the cases' alert state to the changelog: the restarted daemon
    restores them as alerted, so their next anomalous evaluations open nothing."""
    events = case_events(80)
    flags = verdicts(model_path, events)
    expected = expected_alerts(flags, 1)
    first, rest = halves(events)
    early = {(c, k, n) for c, k, n in expected if k == "opened" and n <= len(flags[c]) // 2}
    assert early, "no case alerts in its first half"
    daemon = alert_daemon(kafka_bootstrap, alert_topics, model_path, tmp_path, 1, **FAST_GROUP)
    try:
        daemon.start().wait_ready()
        produce_events(kafka_bootstrap, alert_topics["input"], first)
        deadline = time.monotonic() + 60
        while True:
            committed, ends = committed_and_end(
                kafka_bootstrap, alert_topics["group"], alert_topics["input"]
            )
            if committed == ends:
                break
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
        before = read_alerts(kafka_bootstrap, alert_topics, len(early))
        daemon.stop(signal.SIGKILL)
        daemon.start().wait_ready(60)
        produce_events(kafka_bootstrap, alert_topics["input"], rest)
        outputs_after_catch_up(kafka_bootstrap, alert_topics, daemon)
        alerts = read_alerts(kafka_bootstrap, alert_topics, len(expected))
        restored = [e for e in daemon.log_events() if e.get("event") == "partitions_restored"]
    finally:
        daemon.kill()
    assert sorted(keys(before)) == sorted(early)
    assert restored, "the restarted daemon restored nothing"
    assert sorted(keys(alerts)) == sorted(expected)


@pytest.fixture
def transactional_broker(kafka_broker: Broker) -> str:
    if kafka_broker.embedded:
        pytest.skip(
            "the embedded broker does not filter aborted transactions for read_committed "
            "consumers; run with KAFKA_BOOTSTRAP_SERVERS or Docker"
        )
    return kafka_broker.bootstrap_servers


def test_exactly_once_a_kill_before_the_commit_leaves_one_alert_each(
    transactional_broker: str, alert_topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    """The alerts sent before the kill were in an open transaction, which the restart aborts;
    a read_committed consumer sees each alert exactly once."""
    events = case_events(60)
    expected = expected_alerts(verdicts(model_path, events), 1)
    daemon = alert_daemon(
        transactional_broker, alert_topics, model_path, tmp_path, 1,
        processing_guarantee="exactly_once", commit_interval_seconds=30, **FAST_GROUP,
    )  # fmt: skip
    try:
        daemon.start().wait_ready(60)
        produce_events(transactional_broker, alert_topics["input"], events)
        uncommitted_alerts = read_alerts(transactional_broker, alert_topics, len(expected))
        daemon.stop(signal.SIGKILL)
        daemon.env["CASEWATCH_COMMIT_INTERVAL_SECONDS"] = "0.5"
        daemon.start().wait_ready(60)
        alerts = read_alerts(
            transactional_broker, alert_topics, len(expected), timeout=90,
            isolation="read_committed",
        )  # fmt: skip
    finally:
        daemon.kill()
    assert sorted(keys(uncommitted_alerts)) == sorted(expected)
    assert sorted(keys(alerts)) == sorted(expected)
    assert len({alert.alert_id for alert in alerts}) == len(alerts)


def test_a_missing_alert_topic_is_created_at_start_up(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    alert_topics = {**topics, "alerts": topics["output"].removesuffix("-out") + "-new-alerts"}
    events = case_events(30)
    expected = expected_alerts(verdicts(model_path, events), 1)
    daemon = alert_daemon(kafka_bootstrap, alert_topics, model_path, tmp_path, 1)
    try:
        daemon.start().wait_ready(60)
        produce_events(kafka_bootstrap, alert_topics["input"], events)
        alerts = read_alerts(kafka_bootstrap, alert_topics, len(expected))
        logged = daemon.log_events()
    finally:
        daemon.kill()
    started = [e for e in logged if e.get("event") == "daemon_started"]
    assert started and started[0]["alert_topic"] == alert_topics["alerts"]
    # Created through the admin API, or (the embedded broker) auto-created after it failed.
    creation = {"alert_topic_created", "alert_topic_admin_create_failed"}
    assert creation & {e.get("event") for e in logged}
    assert sorted(keys(alerts)) == sorted(expected)
