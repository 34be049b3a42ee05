"""The evaluator alone, no broker: StreamingEvaluator.on_events over pre-decoded batches.

    .venv/bin/python bench/pipeline.py [--events 200000] [--open-cases 1000] [--batch 2000]
        [--lengths 5,200] [--policy close|every-event|both] [--repeat 3]

Prints events/s per (policy, case length), best of ``--repeat`` runs, and the ratio of 200-event
to 5-event cases per policy (1.0 = cost per event independent of case length).
"""

from __future__ import annotations

import argparse
import time

from _synthetic import REFERENCE_MODEL, generate
from casewatch.events import StreamingEvent
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer

PARTITIONS = 4


def batches(
    events: int, case_length: int, open_cases: int, batch: int
) -> list[list[StreamingEvent]]:
    stream = generate(max(1, events // case_length), case_length, open_cases)
    decoded = stream.events(timestamp=1.7e9)
    offsets = [0] * PARTITIONS
    for event in decoded:
        # Like Kafka's key partitioner: one case, one partition, offsets in arrival order.
        event.partition = hash(event.case_id) % PARTITIONS
        event.offset = offsets[event.partition]
        offsets[event.partition] += 1
    return [decoded[i : i + batch] for i in range(0, len(decoded), batch)]


def run_once(scorer: Scorer, every_event: bool, work: list[list[StreamingEvent]]) -> float:
    evaluator = StreamingEvaluator(scorer, score_on_every_event=every_event)
    events = sum(len(b) for b in work)
    started = time.perf_counter()
    for batch in work:
        evaluator.on_events(batch, source_topic="bench")
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--open-cases", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--lengths", default="5,200")
    parser.add_argument(
        "--policy", choices=["close", "every-event", "both"], default="both",
        type=lambda value: "every-event" if value == "every_event" else value,
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    scorer = Scorer(REFERENCE_MODEL)
    lengths = [int(x) for x in args.lengths.split(",")]
    policies = ["close", "every-event"] if args.policy == "both" else [args.policy]
    work = {n: batches(args.events, n, args.open_cases, args.batch) for n in lengths}
    print(
        f"model {scorer.identity.name}: T={len(scorer.activities)} "
        f"K={scorer.contract.sequence_length}; {args.events} events, "
        f"{args.open_cases} open cases, batches of {args.batch}"
    )
    print(f"{'policy':<12} {'case length':>11} {'events/s':>12}")
    for policy in policies:
        rates = {}
        for n in lengths:
            rates[n] = max(
                run_once(scorer, policy == "every-event", work[n]) for _ in range(args.repeat)
            )
            print(f"{policy:<12} {n:>11} {rates[n]:>12,.0f}")
        if len(lengths) > 1:
            ratio = rates[lengths[-1]] / rates[lengths[0]]
            print(f"{policy:<12} {'ratio':>11} {ratio:>12.2f}  ({lengths[-1]} vs {lengths[0]})")


if __name__ == "__main__":
    main()
