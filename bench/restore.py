"""Seconds to restore N open cases from the state changelog.

Two parts, both printed:

1. through Kafka: N case states in a 4-partition changelog on the embedded broker (or
   KAFKA_BOOTSTRAP_SERVERS), restored by the daemon's Restorer into a fresh evaluator; the
   baseline is a plain consumer reading the same records without applying them;
2. without a broker: decoding and applying N states (10k, 100k, 1M by default), the CPU bound
   of a restore.

    .venv/bin/python bench/restore.py [--kafka-cases 200000] [--apply-cases 10000 100000 1000000]

The embedded broker keeps a bounded log per partition, so part 1 restores what it retains (the
table says how much); part 2 carries the figure up to 1M cases.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import confluent_kafka

from _broker import broker
from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.kafka.broker import ensure_topics
from casewatch.state.restore import Restorer

MODEL = Path(__file__).resolve().parents[1] / "models" / "reference.onnx"
PARTITIONS = 4
QUIET = {"log_level": 3}


def case_states(n: int) -> list[tuple[str, int, bytes]]:
    """(case_id, partition, state) of n open cases with three events each."""
    evaluator = StreamingEvaluator(MODEL, track_changes=True, initial_capacity=n)
    names = evaluator.scorer.activities
    for start in range(0, n, 50_000):
        batch = []
        for case in range(start, min(n, start + 50_000)):
            for step in range(3):
                batch.append(
                    StreamingEvent(
                        f"case-{case:08d}",
                        names[(case + step) % len(names)],
                        timestamp=1.7e9 + step,
                        attributes={"user": "Jamika"},
                        partition=case % PARTITIONS,
                        offset=case * 3 + step,
                    )
                )
        evaluator.on_events(batch)
    return evaluator.take_state_changes().states


def write_changelog(bootstrap: str, topic: str, states: list[tuple[str, int, bytes]]) -> None:
    producer: Any = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, **QUIET}
    )
    for case_id, partition, state in states:
        while True:
            try:
                producer.produce(topic, state, case_id.encode(), partition=partition)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()


def retained(bootstrap: str, topic: str) -> int:
    """Records the broker still holds (the embedded one trims each partition's log)."""
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-read", **QUIET}
    )
    total = 0
    for p in range(PARTITIONS):
        low, high = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, p), timeout=10
        )
        total += high - low
    consumer.close()
    return total


def consume_only(bootstrap: str, topic: str, total: int) -> float:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-read", "fetch.wait.max.ms": 10, **QUIET}
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(PARTITIONS)
        ]
    )
    started, seen = time.perf_counter(), 0
    while seen < total:
        seen += sum(1 for m in consumer.consume(20_000, 0.05) if m.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def restore(bootstrap: str, topic: str) -> tuple[float, int]:
    evaluator = StreamingEvaluator(MODEL)
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "bench-restore",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,
        **QUIET,
    }
    restorer = Restorer(topic, config, evaluator, batch_size=20_000)
    restorer.begin(list(range(PARTITIONS)))
    started = time.perf_counter()
    while restorer.restoring:
        restorer.step()
    elapsed = time.perf_counter() - started
    restorer.close()
    return elapsed, evaluator.open_case_count


def apply_only(states: list[tuple[str, int, bytes]]) -> float:
    evaluator = StreamingEvaluator(MODEL, initial_capacity=len(states))
    started = time.perf_counter()
    for case_id, _, state in states:
        evaluator.restore_case(case_id, state)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka-cases", type=int, default=200_000)
    parser.add_argument("--apply-cases", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()

    print(f"model {MODEL.name}; state record ~{len(case_states(1)[0][2])} bytes")
    states = case_states(args.kafka_cases)
    with broker() as bootstrap:
        topic = f"bench-changelog-{os.getpid()}"
        ensure_topics(bootstrap, [topic])
        write_changelog(bootstrap, topic, states)
        held = retained(bootstrap, topic)
        read_seconds = consume_only(bootstrap, topic, held)
        restore_seconds, restored = restore(bootstrap, topic)
    print(f"\nthrough Kafka ({held:,} of {len(states):,} records retained by the broker)")
    print(f"{'cases':>10} {'restore s':>10} {'cases/s':>10} {'read-only s':>12} {'ratio':>6}")
    print(
        f"{restored:>10,} {restore_seconds:>10.2f} {restored / restore_seconds:>10,.0f} "
        f"{read_seconds:>12.2f} {restore_seconds / read_seconds:>6.2f}"
    )
    print("\ndecode and apply only (no broker)")
    print(f"{'cases':>10} {'seconds':>10} {'cases/s':>10}")
    for n in args.apply_cases:
        seconds = apply_only(case_states(n))
        print(f"{n:>10,} {seconds:>10.2f} {n / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
