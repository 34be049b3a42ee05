"""The daemon's loop with in-memory clients: messages in, evaluations and dead letters out,
input offsets committed only once everything derived from them is delivered.

Start-up metadata, the input consumer, the changelog reader and the producer are fakes; the
decoder, evaluator (a tiny model), checkpoint, rebalance callbacks and restore are the real ones.
What only a broker shows (group protocol, restarts, exactly-once) is in ``tests/integration``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
import structlog

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.daemon.build import build_daemon
from casewatch.daemon.decode import INVALID_REASONS
from casewatch.errors import DeliveryFailure
from casewatch.offline.train import TrainOptions, train
from casewatch.settings import Settings
from casewatch.state.changelog import write_changes
from casewatch.telemetry.metrics import Telemetry
from tests.unit.conftest import USERS, normal_traces
from tests.unit.fakes import (
    FakeAdmin,
    FakeConsumer,
    FakeMessage,
    FakeProducer,
    fake_outputs,
    install,
    kafka_error,
)

IN, OUT, DLQ, GROUP = "in", "out", "dlq", "g"
CHANGELOG = f"{GROUP}--{IN}--changelog"
_MOST_CONSUMES = 100_000  # a loop that never drains its input fails instead of hanging


class Input(FakeConsumer):
    """The input consumer; ``each_batch`` sees every non-empty batch before the loop does."""

    def __init__(self, journal: list[Any]) -> None:
        super().__init__(journal=journal)
        self.consumes = 0
        self.each_batch: Any = None
        self.revoke_next: list[int] = []  # revoked at the start of the next consume

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.consumes += 1
        if self.consumes > _MOST_CONSUMES:
            raise AssertionError(f"the input was not drained in {_MOST_CONSUMES} consumes")
        if self.revoke_next:
            self.revoke([confluent_kafka.TopicPartition(IN, p) for p in self.revoke_next])
            self.revoke_next = []
        batch = super().consume(num_messages, timeout)
        if batch and self.each_batch is not None:
            self.each_batch(batch)
        return batch


def body(case_id: str, activity: str, *, close: bool = False) -> bytes:
    event: dict[str, Any] = {"case_id": case_id, "activity": activity}
    event["attributes"] = {"user": USERS[activity]}
    if close:
        event["close"] = True
    return json.dumps(event).encode()


class Cluster:
    """A daemon over fake clients; ``run`` drives it until its input is drained."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        model: Path,
        telemetry: Telemetry,
        **settings: Any,
    ) -> None:
        self.journal: list[Any] = []
        self.producer = FakeProducer(journal=self.journal)
        self.input = Input(self.journal)
        self.changelog = FakeConsumer()
        install(monkeypatch, producer=self.producer, consumer=[self.input, self.changelog])
        monkeypatch.setattr("casewatch.kafka.clients.AdminClient", FakeAdmin({IN: 2, CHANGELOG: 2}))
        self.settings = Settings(
            bootstrap_servers="fake:9092",
            input_topic=IN,
            output_topic=OUT,
            dlq_topic=DLQ,
            group_id=GROUP,
            model_path=model,
            **{
                "max_batch_wait_ms": 1,
                "shutdown_timeout_seconds": 0.2,
                "startup_timeout_seconds": 1.0,
                **settings,
            },
        )
        self.evaluator = StreamingEvaluator(
            model, track_changes=True, isolate_scoring_failures=True
        )
        self.daemon = build_daemon(self.settings, self.evaluator, telemetry)
        self.input.when_drained = self._drained
        self.linger = 0.0  # how long the loop keeps running once its input is drained
        self._drained_at: float | None = None

    def _drained(self) -> None:
        now = time.monotonic()
        self._drained_at = self._drained_at or now
        if now - self._drained_at >= self.linger:
            self.journal.append(("stop", "", None))
            self.daemon.request_stop()

    def send(self, partition: int, case_id: str, value: bytes) -> None:
        log = self.input.logs.setdefault((IN, partition), [])
        log.append(
            FakeMessage(
                IN, partition, len(log), case_id.encode(), value, timestamp_ms=1_700_000_000_000
            )
        )

    def run(self) -> None:
        self.daemon.run()

    def outputs(self) -> list[dict[str, Any]]:
        return [json.loads(m.value() or b"") for m in self.producer.records(OUT)]

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.journal]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def send_cases(cluster: Cluster) -> None:
    """Case a closes on partition 0, b stays open on partition 1; one bad message on 1."""
    for activity in "ABC":
        cluster.send(0, "a", body("a", activity))
    cluster.send(0, "a", body("a", "E", close=True))
    cluster.send(1, "b", body("b", "A"))
    cluster.send(1, "b", b"{not json")
    cluster.send(1, "b", body("b", "B"))


def test_messages_in_evaluations_and_dead_letters_out_then_commit(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry)
    send_cases(cluster)
    cluster.run()
    (evaluation,) = cluster.outputs()
    assert (evaluation["case_id"], evaluation["n_events"], evaluation["trigger"]) == (
        "a",
        4,
        "close",
    )
    assert evaluation["source"] == {"topic": IN, "partition": 0, "offset": 3}
    (dead,) = cluster.producer.records(DLQ)
    headers = dict(dead.headers() or [])
    assert dead.value() == b"{not json"
    assert headers["casewatch.source.partition"] == b"1"
    assert headers["casewatch.source.offset"] == b"1"
    # Every offset handled is committed, the bad message's included, as the last step.
    assert cluster.input.stored == {(IN, 0): 4, (IN, 1): 3}
    last_commit = max(i for i, kind in enumerate(cluster.kinds()) if kind == "commit")
    assert "produce" not in cluster.kinds()[last_commit:]
    assert cluster.kinds()[last_commit - 1] == "delivered"
    # The open case is in the changelog, the closed one's tombstone too.
    changelog = cluster.producer.records(CHANGELOG)
    assert {(m.key(), m.value() is None) for m in changelog} >= {(b"b", False), (b"a", True)}
    assert cluster.input.closed


def test_new_partitions_are_paused_until_restored(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry)
    send_cases(cluster)
    cluster.run()
    kinds = cluster.kinds()
    assert kinds.index("pause") < kinds.index("resume") < kinds.index("produce")


def test_checkpoints_on_the_interval_while_running(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry, commit_interval_seconds=0.01)
    cluster.linger = 0.1
    send_cases(cluster)
    cluster.run()
    commits = [offsets for kind, _, offsets in cluster.journal if kind == "commit"]
    assert commits[0] == {(IN, 0): 4, (IN, 1): 3}
    kinds = cluster.kinds()
    assert kinds.index("commit") < kinds.index("stop")  # by the loop, not by the shutdown


def blocking_waits(
    monkeypatch: pytest.MonkeyPatch, cluster: Cluster, busy: Callable[[], bool]
) -> list[tuple[float, bool]]:
    """Filled as the loop runs: (timeout, busy()) of every input consume that may block."""
    waits: list[tuple[float, bool]] = []
    consume = cluster.input.consume

    def recording(num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if timeout > 0:
            waits.append((timeout, busy()))
        return consume(num_messages, timeout)

    monkeypatch.setattr(cluster.input, "consume", recording)
    return waits


def test_a_quiet_loop_does_not_hold_a_checkpoint_under_way_for_the_batch_wait(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(
        monkeypatch, tiny_model, telemetry, commit_interval_seconds=0.05, max_batch_wait_ms=200
    )
    cluster.linger = 0.3
    waits = blocking_waits(monkeypatch, cluster, lambda: cluster.daemon.checkpoint.under_way)
    send_cases(cluster)
    cluster.run()
    under_way = [timeout for timeout, busy in waits if busy]
    assert under_way, "no checkpoint was under way while the loop waited"
    assert max(under_way) < 0.01
    # Between checkpoints the loop wakes when the next one is due, not a batch wait later.
    assert max(timeout for timeout, _ in waits) <= 0.05 + 1e-9
    assert any(kind == "commit" for kind in cluster.kinds())


def test_nothing_is_committed_while_outputs_are_undelivered(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry, commit_interval_seconds=0.01)
    cluster.producer.hold = True
    send_cases(cluster)
    with pytest.raises(DeliveryFailure, match="nothing was committed past them"):
        cluster.run()
    assert cluster.input.commits == []
    assert cluster.producer.records(CHANGELOG) == []


def test_a_failed_delivery_stops_the_daemon_without_committing(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry, commit_interval_seconds=0.01)
    cluster.producer.fail[OUT] = kafka_error(-192, "Local: Message timed out")
    send_cases(cluster)
    with pytest.raises(DeliveryFailure, match="timed out"):
        cluster.run()
    assert cluster.input.commits == []
    assert cluster.input.closed


def test_restored_state_is_not_applied_twice(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    # An earlier owner applied a's first three events and wrote their state, then stopped
    # before committing: the group re-delivers them from offset 0.
    earlier = StreamingEvaluator(tiny_model, track_changes=True)
    earlier.on_events(
        [
            StreamingEvent("a", name, attributes={"user": USERS[name]}, partition=0, offset=i)
            for i, name in enumerate("ABC")
        ]
    )
    outputs, written = fake_outputs(monkeypatch)
    write_changes(CHANGELOG, earlier, outputs)
    outputs.flush(1.0)
    cluster = Cluster(monkeypatch, tiny_model, telemetry)
    for message in written.records(CHANGELOG):
        cluster.changelog.append(message)
    send_cases(cluster)
    cluster.run()
    (evaluation,) = cluster.outputs()
    assert (evaluation["case_id"], evaluation["n_events"]) == ("a", 4)


def test_a_restoring_loop_does_not_wait_for_input_between_restore_steps(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    earlier = StreamingEvaluator(tiny_model, track_changes=True)
    earlier.on_events(
        [
            StreamingEvent(case, "A", attributes={"user": USERS["A"]}, partition=0, offset=i)
            for i, case in enumerate(["x", "y", "z", "w"])
        ]
    )
    outputs, written = fake_outputs(monkeypatch)
    write_changes(CHANGELOG, earlier, outputs)
    outputs.flush(1.0)
    cluster = Cluster(
        monkeypatch, tiny_model, telemetry, max_batch_wait_ms=200, restore_batch_size=1
    )
    for message in written.records(CHANGELOG):
        cluster.changelog.append(message)
    waits = blocking_waits(monkeypatch, cluster, lambda: cluster.daemon.restorer.restoring)
    send_cases(cluster)
    cluster.run()
    restoring = [timeout for timeout, busy in waits if busy]
    assert len(restoring) >= 3, "the restore took fewer steps than it has records"
    # The assignment arrives inside a take, whose wait was set before it; every later one is short.
    assert max(restoring[1:]) < 0.01
    assert cluster.daemon.restorer.records == 4  # every case's state was read back


def test_a_commit_rejected_by_a_rebalance_is_retried_at_the_next_checkpoint(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry, commit_interval_seconds=0.01)
    cluster.linger = 0.1
    cluster.input.commit_error = kafka_error(
        confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS, "Broker: Group rebalance in progress"
    )
    send_cases(cluster)
    with structlog.testing.capture_logs() as logs:
        cluster.run()
    rejected = [entry for entry in logs if entry["event"] == "commit_rejected"]
    assert len(rejected) == 1 and rejected[0]["log_level"] == "warning"
    kinds = cluster.kinds()
    assert kinds.index("commit_rejected") < kinds.index("commit") < kinds.index("stop")
    assert cluster.input.stored == {(IN, 0): 4, (IN, 1): 3}


@pytest.fixture(scope="module")
def newer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("newer") / "tiny-2.onnx"
    options = TrainOptions(name="tiny", version="2", sequence_length=8)
    train(normal_traces(300, seed=11), out, options, source="tiny")
    return out


def test_a_reload_request_swaps_the_model_between_batches(
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
    newer_model: Path,
    tmp_path: Path,
    telemetry: Telemetry,
) -> None:
    deployed = tmp_path / "model.onnx"
    shutil.copyfile(tiny_model, deployed)
    cluster = Cluster(monkeypatch, deployed, telemetry, max_batch_size=2)
    for case_id in ("a", "c"):
        for activity in "AB":
            cluster.send(0, case_id, body(case_id, activity))
        cluster.send(0, case_id, body(case_id, "E", close=True))

    def reload_after_a_closes(batch: list[FakeMessage]) -> None:
        if any(m.offset() == 2 for m in batch):
            shutil.copyfile(newer_model, tmp_path / "staged.onnx")
            os.replace(tmp_path / "staged.onnx", deployed)
            cluster.daemon.request_model_reload()  # what SIGHUP does

    cluster.input.each_batch = reload_after_a_closes
    cluster.run()
    versions = [(e["case_id"], e["n_events"], e["model"]["version"]) for e in cluster.outputs()]
    assert versions == [("a", 3, "1"), ("c", 3, "2")]


def test_a_revoked_partition_is_checkpointed_and_its_cases_dropped(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, telemetry: Telemetry
) -> None:
    cluster = Cluster(monkeypatch, tiny_model, telemetry, max_batch_size=2)
    send_cases(cluster)

    def revoke_after_the_bad_message(batch: list[FakeMessage]) -> None:
        if any((m.partition(), m.offset()) == (1, 1) for m in batch):
            cluster.input.revoke_next = [1]

    cluster.input.each_batch = revoke_after_the_bad_message
    cluster.run()
    # What was handled of partition 1 is committed, its open case is in the changelog for the
    # next owner, and nothing more of it is read here.
    assert cluster.input.stored == {(IN, 0): 4, (IN, 1): 2}
    states = [m.key() for m in cluster.producer.records(CHANGELOG) if m.value() is not None]
    assert states == [b"b"]
    assert cluster.evaluator.open_case_count == 0
    assert [e["case_id"] for e in cluster.outputs()] == ["a"]
    assert len(cluster.producer.records(DLQ)) == 1
