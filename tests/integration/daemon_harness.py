"""Run ``casewatch run`` as a subprocess and read what it wrote to Kafka."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import msgspec

from casewatch.events import StreamingEvaluation, StreamingEvent
from casewatch.kafka.feed import replay
from casewatch.offline.logs import Trace, interleave, read_log
from tests.conftest import BUNDLED_LOG, casewatch_command, casewatch_env

QUIET = {"log_level": 3}


@functools.cache
def bundled_traces() -> list[Trace]:
    return read_log(BUNDLED_LOG)


def case_events(cases: int, *, close_marker: bool = True) -> list[StreamingEvent]:
    return list(interleave(bundled_traces()[:cases], close_marker=close_marker))


def produce_events(
    bootstrap: str, topic: str, events: Iterable[StreamingEvent], rate: float = 0
) -> int:
    return replay(events, bootstrap_servers=bootstrap, topic=topic, rate=rate).events


class DaemonProcess:
    """``casewatch run`` with CASEWATCH_* settings; its log goes to a file for inspection."""

    def __init__(
        self, bootstrap: str, topics: dict[str, str], model: Path, log_dir: Path, **settings: Any
    ) -> None:
        values = {
            "bootstrap_servers": bootstrap,
            "input_topic": topics["input"],
            "output_topic": topics["output"],
            "dlq_topic": topics["dlq"],
            "group_id": topics["group"],
            "model_path": str(model),
            "metrics_host": "127.0.0.1",
            "metrics_port": "0",
            "commit_interval_seconds": "0.3",
            "max_batch_wait_ms": "50",
            "log_format": "json",
            **{k: str(v) for k, v in settings.items()},
        }
        self.env = casewatch_env(**{f"CASEWATCH_{k.upper()}": v for k, v in values.items()})
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / "daemon-0.log"

    def start(self) -> DaemonProcess:
        runs = len(list(self.log_dir.glob("daemon-*.log")))
        self.log_path = self.log_dir / f"daemon-{runs}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                casewatch_command("run"), env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def metrics_url(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_events():
                if record.get("event") == "starting":
                    return str(record["metrics"]).removesuffix("/metrics")
            self._assert_running()
            time.sleep(0.1)
        raise AssertionError(f"daemon did not report its metrics address:\n{self.log_text()}")

    def wait_ready(self, timeout: float = 30.0) -> str:
        base = self.metrics_url(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if http_get(base + "/readyz")[0] == 200:
                return base
            self._assert_running()
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready after {timeout} s:\n{self.log_text()}")

    def metrics_text(self) -> str:
        status, body = http_get(self.metrics_url() + "/metrics")
        assert status == 200, status
        return body

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _assert_running(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"daemon exited with {code}:\n{self.log_text()}")


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int
    offset: int


def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: int,
    timeout: float = 30.0,
    grace: float = 1.0,
    isolation: str = "read_uncommitted",
) -> list[Record]:
    """Every record of ``topic`` from the beginning: stops ``grace`` seconds after ``until``."""
    consumer: Any = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "test-reader",
            "isolation.level": isolation,
            **QUIET,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in partitions
            ]
        )
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    records.append(_record(message))
            if len(records) >= until:
                deadline = min(deadline, time.monotonic() + grace)
        return records
    finally:
        consumer.close()


def _record(message: Any) -> Record:
    headers = dict(message.headers() or [])
    return Record(message.key(), message.value(), headers, message.partition(), message.offset())


def evaluations(records: list[Record]) -> list[StreamingEvaluation]:
    decoder = msgspec.json.Decoder(StreamingEvaluation)
    return [decoder.decode(r.value) for r in records if r.value is not None]


def committed_and_end(bootstrap: str, group: str, topic: str) -> tuple[list[int], list[int]]:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, **QUIET}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        wanted = [confluent_kafka.TopicPartition(topic, p) for p in partitions]
        committed = [tp.offset for tp in consumer.committed(wanted, timeout=10)]
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in wanted]
        return committed, ends
    finally:
        consumer.close()


def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Input records the group has not committed yet (a partition never committed counts whole)."""
    committed, ends = committed_and_end(bootstrap, group, topic)
    return sum(ends) - sum(max(c, 0) for c in committed)


def published_count(bootstrap: str, topics: dict[str, str]) -> int:
    """Records on the output topic so far."""
    return sum(committed_and_end(bootstrap, topics["group"], topics["output"])[1])


def wait_for_outputs(
    bootstrap: str,
    topics: dict[str, str],
    wanted: float,
    daemon: DaemonProcess,
    timeout: float = 90,
) -> int:
    """Wait until the output topic holds ``wanted`` records; returns how many it holds."""
    deadline = time.monotonic() + timeout
    while (count := published_count(bootstrap, topics)) < wanted:
        assert time.monotonic() < deadline, daemon.log_text()
        time.sleep(0.05)
    return count


def outputs_after_catch_up(
    bootstrap: str, topics: dict[str, str], daemon: DaemonProcess, timeout: float = 120
) -> list[StreamingEvaluation]:
    """Every evaluation published once the group has committed all of its input.

    Waiting on committed offsets rather than on a record count matters after restarts, where
    redelivered evaluations would make a count reach its target early.
    """
    deadline = time.monotonic() + timeout
    while True:
        committed, ends = committed_and_end(bootstrap, topics["group"], topics["input"])
        if all(max(c, 0) == end for c, end in zip(committed, ends, strict=True)):
            break
        assert time.monotonic() < deadline, daemon.log_text()
        time.sleep(0.2)
    total = published_count(bootstrap, topics)
    return evaluations(read_records(bootstrap, topics["output"], until=total, timeout=60))
