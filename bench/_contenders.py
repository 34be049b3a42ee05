"""The in-house contenders of the end-to-end benchmark: the ceiling and the naive evaluator.

Both read with consume batches from explicitly assigned partitions (no group join to wait for)
and report their progress through a shared counter.

* ceiling (read): consume + the daemon's EventDecoder, nothing else: what any design that only
  reads can reach here; the ceiling of scoring on close, which produces one record per case.
* ceiling pipe: the read ceiling plus one ~0.6 KB JSON record produced per event and delivered,
  taking batches and batching produce as the daemon does: the ceiling of scoring on every event,
  and paced, the floor of its latency.
* naive: what a first design does: ``json.loads`` per event, a Python list of events per case, and
  on each scoring the whole buffered trace re-encoded into the model's input tensors and scored
  with a batch of one, each evaluation produced as soon as it exists.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import confluent_kafka
import msgspec
import numpy as np

from _feed import FETCH, QUIET, Shared, cpu_seconds, peak_rss
from casewatch.daemon.decode import EventDecoder
from casewatch.daemon.loop import Daemon
from casewatch.scoring.scorer import Scorer


def _consumer(bootstrap: str, topic: str, partitions: int) -> Any:
    consumer: Any = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-contender",
         "enable.auto.commit": False, "auto.offset.reset": "earliest", **FETCH, **QUIET}
    )  # fmt: skip
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(partitions)
        ]
    )
    return consumer


def ceiling(
    bootstrap: str, topic: str, partitions: int, total: int, wait: float, shared: Shared
) -> None:
    consumer = _consumer(bootstrap, topic, partitions)
    decode = EventDecoder().decode
    seen = 0
    cpu = cpu_seconds()
    shared.ready.set()
    while seen < total:
        for message in consumer.consume(num_messages=2000, timeout=wait):
            if message.error() is None:
                decode(message.value(), message.key(), message.partition(), message.offset())
                seen += 1
        shared.progress.value = seen
    shared.done_at.value = time.time()
    shared.rss.value = peak_rss()
    shared.cpu.value = cpu_seconds() - cpu
    consumer.close()


# About the size of one evaluation record of the reference model (its residual map dominates).
_PIPE_PADDING = "x" * 480
# The daemon's producer batching (``casewatch.kafka.config``), so the pipe is its floor.
_PIPE_PRODUCER = {"linger.ms": 2, "compression.type": "lz4", "acks": "all"}


def pipe(
    bootstrap: str,
    topic: str,
    output: str,
    partitions: int,
    total: int,
    wait: float,
    shared: Shared,
) -> None:
    consumer = _consumer(bootstrap, topic, partitions)
    producer: Any = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, **_PIPE_PRODUCER, **QUIET}
    )
    decode = EventDecoder().decode
    encode = msgspec.json.Encoder().encode
    produce, poll = producer.produce, producer.poll
    seen = 0
    cpu = cpu_seconds()
    shared.ready.set()
    while seen < total:
        # The daemon's way of taking a batch: what is fetched, else wake on the first message.
        for message in Daemon._take(consumer, 2000, wait):
            if message.error() is not None:
                continue
            event = decode(message.value(), message.key(), message.partition(), message.offset())
            record = {
                "case_id": event.case_id, "activity": event.name, "n_events": seen,
                "last_event_at": event.timestamp,
                "source": {"partition": event.partition, "offset": event.offset},
                "padding": _PIPE_PADDING,
            }  # fmt: skip
            while True:
                try:
                    produce(output, encode(record), event.case_id.encode())
                    break
                except BufferError:
                    poll(0.01)
            seen += 1
        poll(0)
        shared.progress.value = seen
    producer.flush(60)
    shared.done_at.value = time.time()
    shared.rss.value = peak_rss()
    shared.cpu.value = cpu_seconds() - cpu
    consumer.close()


class _NaiveModel:
    """Per-case input tensors built by hand from the contract's feature layout."""

    def __init__(self, model: str) -> None:
        self.scorer = Scorer(model)
        contract = self.scorer.contract
        self.labels = self.scorer.activities
        self.ids = self.scorer.activity_ids
        self.t = len(self.labels)
        self.k = contract.sequence_length
        self.attributes = [
            (a.name, {v: i for i, v in enumerate(a.values)}, len(a.values))
            for a in contract.event_attributes
        ]

    def features(self, trace: list[dict[str, Any]], closed: bool) -> dict[str, Any]:
        t, k = self.t, self.k
        counts = np.zeros((1, t), np.float32)
        sequence = np.full((1, k), t + 1, np.int64)
        attributes = np.array(
            [[[size + 1 for _, _, size in self.attributes]] * k], np.int64
        ).reshape(1, k, len(self.attributes))
        unknown = 0
        for position, event in enumerate(trace):
            activity = self.ids.get(event["activity"], t)
            if activity == t:
                unknown += 1
            else:
                counts[0, activity] += 1
            slot = k - len(trace) + position
            if slot >= 0:
                sequence[0, slot] = activity
                for j, (name, values, size) in enumerate(self.attributes):
                    value = event.get("attributes", {}).get(name)
                    attributes[0, slot, j] = size + 1 if value is None else values.get(value, size)
        times = [e["timestamp"] for e in trace if e.get("timestamp") is not None]
        elapsed = (times[-1] - times[0]) if times else 0.0
        return {
            "activity_counts": counts,
            "n_events": np.array([[len(trace)]], np.float32),
            "unknown_activities": np.array([[unknown]], np.float32),
            "elapsed_seconds": np.array([[elapsed]], np.float32),
            "closed": np.array([[1.0 if closed else 0.0]], np.float32),
            "sequence": sequence,
            "event_attributes": attributes,
        }

    def evaluate(self, case_id: str, trace: list[dict[str, Any]], closed: bool) -> bytes:
        result = self.scorer.run(self.features(trace, closed), 1)
        score = float(result.scores[0])
        residuals = {
            label: round(float(r), 6)
            for label, r in zip(self.labels, result.residuals[0], strict=True)
            if r > 0
        }
        top = sorted(residuals.items(), key=lambda item: -item[1])[:3]
        last = trace[-1]
        identity = self.scorer.identity
        text = f"{identity.sha256}|{case_id}|{len(trace)}|{last['timestamp']}"
        record = {
            "evaluation_id": hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
            "case_id": case_id, "n_events": len(trace), "trace_score": round(score, 6),
            "threshold": self.scorer.threshold, "anomalous": score > self.scorer.threshold,
            "per_transition_residuals": residuals,
            "top_transitions": [{"transition": n, "residual": v} for n, v in top],
            "closed": closed, "trigger": "close" if closed else "event",
            "first_event_at": trace[0].get("timestamp"), "last_event_at": last.get("timestamp"),
            "evaluated_at": time.time(),
            "model": {"name": identity.name, "version": identity.version,
                      "sha256": identity.sha256},
            "source": {"topic": None, "partition": last["partition"], "offset": last["offset"]},
        }  # fmt: skip
        return json.dumps(record).encode()


def naive(
    bootstrap: str,
    topic: str,
    output: str,
    partitions: int,
    total: int,
    every_event: bool,
    model: str,
    wait: float,
    shared: Shared,
) -> None:
    consumer = _consumer(bootstrap, topic, partitions)
    producer: Any = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **QUIET})
    evaluator = _NaiveModel(model)
    cases: dict[str, list[dict[str, Any]]] = {}
    seen = 0
    cpu = cpu_seconds()
    shared.ready.set()
    while seen < total:
        for message in consumer.consume(num_messages=2000, timeout=wait):
            if message.error() is not None:
                continue
            event = json.loads(message.value())
            event["partition"], event["offset"] = message.partition(), message.offset()
            case_id = event["case_id"]
            trace = cases.setdefault(case_id, [])
            trace.append(event)
            closed = bool(event.get("close"))
            if closed:
                del cases[case_id]
            if closed or every_event:
                value = evaluator.evaluate(case_id, trace, closed)
                producer.produce(output, value, case_id.encode())
                producer.poll(0)
            seen += 1
        shared.progress.value = seen
    producer.flush(60)
    shared.rss.value = peak_rss()
    shared.cpu.value = cpu_seconds() - cpu
    consumer.close()
