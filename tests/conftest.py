"""Shared fixtures: a Kafka-protocol broker for the session, unique topics, a scorer.

The broker is, in order of preference: ``KAFKA_BOOTSTRAP_SERVERS`` when set, a testcontainers
Kafka when a Docker engine answers, else librdkafka's mock cluster run by ``casewatch broker`` in
a subprocess (a separate process, like a real broker).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "service"
BUNDLED_LOG = SERVICE / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
REFERENCE_MODEL = ROOT / "models" / "reference.onnx"

# The package may not be installed in the environment running the tests.
if str(SERVICE) not in sys.path:
    sys.path.insert(0, str(SERVICE))


def casewatch_env(**extra: str) -> dict[str, str]:
    """The environment for a ``python -m casewatch`` subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SERVICE), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def casewatch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "casewatch", *args]


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # any failure means "no usable engine"
        return False
    return True


@contextmanager
def broker_process() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``casewatch broker`` in a process of its own: its address and the process."""
    process = subprocess.Popen(
        casewatch_command("broker"),
        env=casewatch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        if not first.startswith("bootstrap="):
            pytest.fail(f"casewatch broker did not report its address: {first!r}")
        yield first.removeprefix("bootstrap="), process
    finally:
        # A frozen broker (SIGSTOP) must be woken to be stopped.
        process.send_signal(signal.SIGCONT)
        stop_process(process)


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Broker:
    bootstrap_servers: str
    embedded: bool  # librdkafka's mock cluster, with its known limits


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """A broker that lives for the whole test session."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield Broker(configured, embedded=False)
    elif _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield Broker(kafka.get_bootstrap_server(), embedded=False)
    else:
        with broker_process() as (address, _):
            yield Broker(address, embedded=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """Bootstrap servers of the session broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def topic_names(request: pytest.FixtureRequest) -> dict[str, str]:
    """Input, output and dead-letter topic names unique to this test, plus a group id."""
    stem = f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
    return {
        "input": f"{stem}-in",
        "output": f"{stem}-out",
        "dlq": f"{stem}-dlq",
        "group": f"{stem}-group",
        "changelog": f"{stem}-group--{stem}-in--changelog",
    }


@pytest.fixture
def topics(kafka_broker: Broker, topic_names: dict[str, str]) -> dict[str, str]:
    """Like ``topic_names``, with the topics created on the session broker."""
    from casewatch.kafka.broker import ensure_topics

    names = [topic_names["input"], topic_names["output"], topic_names["dlq"]]
    if kafka_broker.embedded:
        # The embedded broker cannot create topics by request (it auto-creates 4 partitions),
        # so the daemon's own compacted changelog creation would only time out there.
        names.append(topic_names["changelog"])
    ensure_topics(
        kafka_broker.bootstrap_servers, names, partitions=None if kafka_broker.embedded else 4
    )
    return topic_names


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the reference scorer when it is present, else one trained on the bundled log.

    A copy, so every daemon and every offline comparison in the session scores with the same
    model even if the reference model is retrained meanwhile.
    """
    if REFERENCE_MODEL.exists():
        copy = tmp_path_factory.mktemp("model") / "reference.onnx"
        shutil.copyfile(REFERENCE_MODEL, copy)
        return copy
    from casewatch.offline.logs import read_log
    from casewatch.offline.train import TrainOptions, train

    out = tmp_path_factory.mktemp("model") / "test.onnx"
    train(read_log(BUNDLED_LOG), out, TrainOptions(name="test", version="0"), source="bundled")
    return out


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Commands configure process-wide logging (level, format); each test starts from the same."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)
