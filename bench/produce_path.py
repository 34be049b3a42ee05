"""Microseconds of loop time per output record: one ``produce`` per record against ``produce_many``.

    .venv/bin/python bench/produce_path.py [--records 200000] [--batch 500] [--rounds 3]

Against the embedded broker (or KAFKA_BOOTSTRAP_SERVERS), with the daemon's producer settings,
batches of evaluation-sized records are handed to an ``OutputProducer`` the way the loop does:
the batch, then ``poll(0)`` for the delivery reports, a ``flush`` at the end. Printed per path:
the time spent handing records over (produce) and serving their reports (serve), per record.
The two paths take turns for ``--rounds`` rounds on the same producer settings; the ratio of
their medians is the figure to read, since the machine's load moves both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence

from _broker import broker
from casewatch.kafka.broker import ensure_topics
from casewatch.kafka.config import ClientOptions, producer_config
from casewatch.kafka.producer import OutputProducer

Handover = Callable[[OutputProducer, str, Sequence[bytes], Sequence[bytes]], None]


def one_by_one(
    outputs: OutputProducer, topic: str, keys: Sequence[bytes], values: Sequence[bytes]
) -> None:
    produce = outputs.produce
    for key, value in zip(keys, values, strict=True):
        produce(topic, key, value)


def batched(
    outputs: OutputProducer, topic: str, keys: Sequence[bytes], values: Sequence[bytes]
) -> None:
    outputs.produce_many(topic, keys, values)


def measure(
    bootstrap: str, topic: str, handover: Handover, records: int, batch: int
) -> tuple[float, float]:
    """(produce, serve) microseconds per record."""
    options = ClientOptions(
        bootstrap_servers=bootstrap, group_id="bench", max_pending_outputs=10 * records
    )
    config = producer_config(options)
    outputs = OutputProducer(config, max_pending=10 * records, dead_letter_topic=topic + "-dlq")
    keys = [f"case-{i % 5000:08d}".encode() for i in range(records)]
    values = [b'{"case_id":"case-%08d","score":%d,' % (i % 5000, i) + b'"x":"' + b"v" * 480 + b'"}'
              for i in range(records)]  # fmt: skip
    produce = serve = 0.0
    for start in range(0, records, batch):
        began = time.perf_counter()
        handover(outputs, topic, keys[start : start + batch], values[start : start + batch])
        handed = time.perf_counter()
        outputs.poll(0)
        produce += handed - began
        serve += time.perf_counter() - handed
    began = time.perf_counter()
    if not outputs.flush(60):
        raise RuntimeError("records not delivered")
    serve += time.perf_counter() - began
    assert outputs.delivered == records
    return 1e6 * produce / records, 1e6 * serve / records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    paths: dict[str, Handover] = {"produce per record": one_by_one, "produce_many": batched}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    with broker() as bootstrap:
        topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, [topic], partitions=4)
        for _ in range(args.rounds):
            for name, handover in paths.items():
                results[name].append(measure(bootstrap, topic, handover, args.records, args.batch))
    print(
        f"{args.records:,} records of ~520 bytes in batches of {args.batch}, {args.rounds} rounds"
    )
    print(f"{'path':22s} {'produce us/rec':>15s} {'serve us/rec':>13s} {'total':>8s}")
    totals: dict[str, float] = {}
    for name, runs in results.items():
        produce = statistics.median(r[0] for r in runs)
        serve = statistics.median(r[1] for r in runs)
        totals[name] = produce + serve
        print(f"{name:22s} {produce:15.2f} {serve:13.2f} {produce + serve:8.2f}")
    base, new = totals["produce per record"], totals["produce_many"]
    print(
        f"\nproduce_many / produce per record: {new / base:.2f} ({new:.2f} / {base:.2f} us/record)"
    )


if __name__ == "__main__":
    main()
