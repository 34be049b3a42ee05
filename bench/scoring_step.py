"""The scoring path alone, no broker: where the time per evaluation goes.

    .venv/bin/python bench/scoring_step.py [--events 200000] [--lengths 10,200] [--open-cases 2000]
        [--batch 2000] [--policy close|every-event|both]

Feeds a generated stream through ``StreamingEvaluator.on_events`` in consumer-sized batches and
encodes every evaluation with the daemon's encoder (msgspec JSON). Reported per policy and case
length: events/s of route + score + build + encode, and microseconds per evaluation split into
the model call (``Scorer.run``), record building (``RecordBuilder.build``), encoding, and the
rest (routing, feature gathering, snapshots). Figures are the best of ``--repeat`` runs, so one
garbage collection or a neighbour's burst does not decide them.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from _synthetic import REFERENCE_MODEL, generate
from casewatch.events import StreamingEvent
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer


@dataclass
class Timings:
    total: float = 0.0
    model: float = 0.0
    build: float = 0.0
    encode: float = 0.0
    evaluations: int = 0


def timed(call: Callable[..., Any], into: Timings, field: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            setattr(into, field, getattr(into, field) + time.perf_counter() - started)

    return wrapper


def run_once(
    scorer: Scorer, batches: list[list[StreamingEvent]], *, every_event: bool, open_cases: int
) -> Timings:
    timings = Timings()
    evaluator = StreamingEvaluator(
        scorer, score_on_every_event=every_event, initial_capacity=2 * open_cases
    )
    # Instance attributes shadow the methods for this evaluator only.
    original_run = scorer.run
    scorer.run = timed(original_run, timings, "model")  # type: ignore[method-assign]
    records = evaluator._bound.records  # the bench splits out this private step
    records.build = timed(records.build, timings, "build")  # type: ignore[method-assign]
    encode = msgspec.json.Encoder().encode
    try:
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        for batch in batches:
            evaluations = evaluator.on_events(batch)
            encoded = time.perf_counter()
            for evaluation in evaluations:
                encode(evaluation)
            timings.encode += time.perf_counter() - encoded
            timings.evaluations += len(evaluations)
        timings.total = time.perf_counter() - started
    finally:
        gc.enable()
        del scorer.run
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--lengths", default="10,200")
    parser.add_argument("--open-cases", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--policy", choices=["close", "every-event", "both"], default="both")
    args = parser.parse_args()
    scorer = Scorer(REFERENCE_MODEL)
    policies = ["close", "every-event"] if args.policy == "both" else [args.policy]
    print(
        f"{'policy':<12}{'length':>7}{'events/s':>11}{'evals':>9}"
        f"{'us/eval':>9}{'model':>8}{'build':>8}{'encode':>8}{'rest':>8}"
    )
    for length in (int(x) for x in args.lengths.split(",")):
        stream = generate(max(1, args.events // length), length, args.open_cases)
        events = stream.events(1.7e9)
        batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
        for policy in policies:
            runs = [
                run_once(
                    scorer, batches, every_event=policy == "every-event", open_cases=args.open_cases
                )
                for _ in range(args.repeat)
            ]
            best = min(runs, key=lambda t: t.total)
            n = max(1, best.evaluations)
            rest = best.total - best.model - best.build - best.encode
            print(
                f"{policy:<12}{length:>7}{len(events) / best.total:>11,.0f}{best.evaluations:>9}"
                f"{1e6 * best.total / n:>9.2f}{1e6 * best.model / n:>8.2f}"
                f"{1e6 * best.build / n:>8.2f}{1e6 * best.encode / n:>8.2f}{1e6 * rest / n:>8.2f}"
            )


if __name__ == "__main__":
    main()
