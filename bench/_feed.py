"""Feeder and collector processes of the end-to-end benchmark, plus small Kafka helpers.

The feeder produces the generated stream with each event's send time as its timestamp and never
runs more than ``backlog`` events ahead of the contender's reported progress, because the
embedded broker keeps a bounded log per partition. The collector reads the output topic, stamps
each evaluation's arrival, and reports progress (the highest source offset per partition) so the
feeder can pace a contender whose own counters are out of reach.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import msgspec

QUIET = {"log_level": 3}
_TS_REFRESH = 64  # events per send-time reading when unthrottled: time.time() is not free


@dataclass
class Shared:
    """multiprocessing Values shared by the processes of one contender run."""

    progress: Any  # events the contender has provably handled
    first_sent: Any  # wall time of the first produce
    done_at: Any  # wall time the contender finished (0 while running)
    ready: Any  # Event: the contender or collector is ready
    rss: Any  # peak RSS the contender read from /proc before exiting
    cpu: Any  # CPU seconds the contender spent from ready to done


# The embedded broker holds a fetch for fetch.wait.max.ms (500 ms by default) even when data is
# waiting; real brokers answer at once. Every consumer of the benchmark asks for short waits.
FETCH = {"fetch.wait.max.ms": 5}


def write_stream(path: Path, keys: list[bytes], heads: list[bytes]) -> None:
    with path.open("wb") as out:
        pickle.dump((keys, heads), out, protocol=pickle.HIGHEST_PROTOCOL)


def feeder(
    bootstrap: str, topic: str, stream: str, backlog: int, rate: float, shared: Shared
) -> None:
    """Produce every event; ``rate`` > 0 paces to that many events/s, else only the backlog."""
    with open(stream, "rb") as source:
        keys, heads = pickle.load(source)
    producer: Any = confluent_kafka.Producer(
        # Paced runs measure latency: a 1 ms linger keeps the stamp close to the send without
        # one produce request per event, which would take the broker's share of the CPU.
        {"bootstrap.servers": bootstrap, "linger.ms": 1 if rate > 0 else 5, **QUIET}
    )
    produce, poll, progress = producer.produce, producer.poll, shared.progress
    started = time.time()
    shared.first_sent.value = started
    stamp = b""
    for i, (key, head) in enumerate(zip(keys, heads, strict=True)):
        if rate > 0:
            due = started + i / rate
            if (ahead := due - time.time()) > 0.001:
                # Sleep rather than poll: poll's timeout has millisecond resolution and would
                # spin, taking a core from the contender.
                time.sleep(ahead)
                poll(0)
            stamp = f"{time.time():.6f}".encode()
        elif i % _TS_REFRESH == 0:
            stamp = f"{time.time():.6f}".encode()
            while i - progress.value > backlog:
                time.sleep(0.0005)
                poll(0)
        while True:
            try:
                produce(topic, head + stamp + b"}", key)
                break
            except BufferError:
                poll(0.01)
    producer.flush(60)


class _Evaluation(msgspec.Struct):
    """The fields of an evaluation record the collector needs."""

    last_event_at: float | None
    source: _Source


class _Source(msgspec.Struct):
    partition: int
    offset: int


def collector(
    bootstrap: str, topic: str, partitions: int, expected: int, shared: Shared, out: Any
) -> None:
    """Read ``expected`` evaluations; send back (latencies in seconds, arrival of the last)."""
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-collector",
         "enable.auto.commit": False, "auto.offset.reset": "earliest", **FETCH, **QUIET}
    )  # fmt: skip
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(partitions)
        ]
    )
    decode = msgspec.json.Decoder(_Evaluation).decode
    highest = [-1] * partitions
    latencies: list[float] = []
    seen, last_arrival = 0, 0.0
    shared.ready.set()
    while seen < expected:
        # A short timeout: consume returns only when the batch is full or the time is up, and
        # the arrival stamp must not wait for either.
        messages = consumer.consume(num_messages=5000, timeout=0.002)
        if not messages:
            continue
        arrived = time.time()
        for message in messages:
            if message.error() is not None:
                continue
            evaluation = decode(message.value())
            seen += 1
            if evaluation.last_event_at is not None:
                latencies.append(arrived - evaluation.last_event_at)
            source = evaluation.source
            highest[source.partition] = max(highest[source.partition], source.offset)
        last_arrival = arrived
        shared.progress.value = max(shared.progress.value, sum(h + 1 for h in highest))
    shared.done_at.value = last_arrival
    consumer.close()
    out.send((latencies, last_arrival))


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, **QUIET}
    )
    try:
        wanted = [confluent_kafka.TopicPartition(topic, p) for p in range(partitions)]
        return [tp.offset for tp in consumer.committed(wanted, timeout=10)]
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-ends", **QUIET}
    )
    try:
        return [
            consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a live process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a live process and its live children (the workers of a supervisor)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += cpu_seconds(entry.name)
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_cpu() -> tuple[float, float]:
    """CPU seconds since boot, summed over cores: (busy, stolen by the hypervisor)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7] if len(fields) > 7 else 0
    guest = sum(fields[8:])  # already counted in user time
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle - steal - guest) / tick, steal / tick


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a live process (librdkafka names its threads rdk:*)."""
    result: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            name = "rdk" if name.startswith("rdk:") else name
            result[name] = result.get(name, 0.0) + cpu_seconds(f"{pid}/task/{task.name}")
        except OSError:
            continue
    return result


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident set (VmHWM) of a live process, in bytes; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def broker() -> tuple[str, subprocess.Popen[str] | None]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"], None
    process = subprocess.Popen(
        [sys.executable, "-m", "casewatch", "broker"], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("bootstrap="):
        process.kill()
        raise RuntimeError(f"embedded broker did not start: {line!r}")
    return line.removeprefix("bootstrap="), process


def wait_ready(log: Path, daemon: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The daemon's metrics base URL, once /readyz answers 200 (partitions assigned)."""
    deadline = time.time() + timeout
    base = None
    while time.time() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"daemon exited:\n{log.read_text()}")
        if base is None:
            for line in log.read_text().splitlines():
                if '"starting"' in line:
                    base = json.loads(line)["metrics"].removesuffix("/metrics")
        else:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return base
            except OSError:
                pass
        time.sleep(0.1)
    raise RuntimeError("daemon not ready")


def wait_balanced(base: str, workers: int, partitions: int, timeout: float = 60) -> None:
    """Until every worker has input partitions and together they have all: a group still
    rebalancing when the feeder starts would measure the rebalance, not the workers."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assigned = _gauge_values(base, "casewatch_assigned_partitions")
        if len(assigned) == workers and min(assigned) > 0 and sum(assigned) == partitions:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers did not share the {partitions} partitions in time")


def _gauge_values(base: str, name: str) -> list[float]:
    """The values of one gauge's series (one per worker when the endpoint aggregates)."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=2) as response:
            lines = response.read().decode().splitlines()
    except OSError:
        return []
    return [float(line.split()[-1]) for line in lines if line.startswith(name + "{")]


def events_consumed(base: str) -> int:
    """The daemon's casewatch_events_consumed_total; -1 when the scrape fails."""
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("casewatch_events_consumed_total "):
                    return int(float(line.split()[1]))
    except OSError:
        pass
    return -1
