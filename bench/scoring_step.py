"""The scoring path alone, no broker: where the time per evaluation goes.

    .venv/bin/python bench/scoring_step.py [--events 200000] [--lengths 10,200] [--open-cases 2000]
        [--batch 2000] [--policy close|every-event|both] [--model PATH]
        [--path records|columns|both]

Feeds a generated stream through the evaluator in consumer-sized batches and encodes every
evaluation as JSON, along one of two paths: ``columns`` is the daemon's
(``StreamingEvaluator.on_events_batch``, then ``ScoredBatch.encoded``, ``keys`` and
``verdicts``); ``records`` is the record API (``on_events``'s ``StreamingEvaluation`` objects,
then ``msgspec.json`` per record), the path the daemon took before. Reported per policy, case
length and path: events/s, and microseconds per evaluation split into the model call
(``Scorer.run``), records (``RecordEncoder.encode``, or ``RecordBuilder.build`` plus encoding
for ``records``), and the rest (routing, feature gathering, snapshots, alerts, metric columns).
With both paths, the last column is the columns path's speed-up in the same run (the paths take
turns). Figures are the best of ``--repeat`` runs, so one garbage collection or a neighbour's
burst does not decide them.

Every-event scoring is measured twice in the same run: on the whole ring (``every-event``) and
incrementally on a window of each case's newest events (``incremental``,
``casewatch.scoring.incremental``), followed by their ratio (on the last path measured). A model
whose contract does not declare incremental scoring (the bundled one, until it is retrained) is
replaced for all rows by its recipe exported with the current export
(``_synthetic.incremental_model``).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from _synthetic import REFERENCE_MODEL, generate, incremental_model
from casewatch.events import StreamingEvaluation, StreamingEvent
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer


@dataclass
class Timings:
    total: float = 0.0
    model: float = 0.0
    records: float = 0.0
    evaluations: int = 0


def timed(call: Callable[..., Any], into: Timings, field: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            setattr(into, field, getattr(into, field) + time.perf_counter() - started)

    return wrapper


# policy -> (score on every event, incrementally)
MODES = {"close": (False, False), "every-event": (True, False), "incremental": (True, True)}


ENCODE = msgspec.json.Encoder().encode


def records_step(evaluator: StreamingEvaluator, batch: list[StreamingEvent], into: Timings) -> int:
    evaluations = evaluator.on_events(batch)
    started = time.perf_counter()
    for evaluation in evaluations:
        ENCODE(evaluation)
    into.records += time.perf_counter() - started
    return len(evaluations)


def columns_step(evaluator: StreamingEvaluator, batch: list[StreamingEvent], into: Timings) -> int:
    scored = evaluator.on_events_batch(batch)
    if scored is None:
        return 0
    scored.encoded()
    scored.keys()
    scored.verdicts()
    return len(scored)


def run_once(
    scorer: Scorer,
    batches: list[list[StreamingEvent]],
    *,
    policy: str,
    open_cases: int,
    path: str,
) -> Timings:
    timings = Timings()
    every_event, incremental = MODES[policy]
    evaluator = StreamingEvaluator(
        scorer,
        score_on_every_event=every_event,
        incremental=incremental,
        initial_capacity=2 * open_cases,
    )
    # Instance attributes shadow the methods for this evaluator only.
    original_run = scorer.run
    scorer.run = timed(original_run, timings, "model")  # type: ignore[method-assign]
    bound = evaluator._bound  # the bench splits out these private steps
    if path == "records":
        bound.records.build = timed(bound.records.build, timings, "records")  # type: ignore[method-assign]
    else:
        bound.encoder.encode = timed(bound.encoder.encode, timings, "records")  # type: ignore[method-assign]
    step = records_step if path == "records" else columns_step
    try:
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        for batch in batches:
            timings.evaluations += step(evaluator, batch, timings)
        timings.total = time.perf_counter() - started
    finally:
        gc.enable()
        del scorer.run
    return timings


def disagreement(scorer: Scorer, batches: list[list[StreamingEvent]], open_cases: int) -> str:
    """The largest score and residual difference between whole-ring and incremental scoring of
    the evaluations of cases within the ring (the two must agree there to 1e-6)."""
    ring = scorer.contract.sequence_length
    seen: list[list[StreamingEvaluation]] = []
    for incremental in (False, True):
        evaluator = StreamingEvaluator(
            scorer, score_on_every_event=True, incremental=incremental,
            initial_capacity=2 * open_cases,
        )  # fmt: skip
        seen.append([e for batch in batches for e in evaluator.on_events(batch)])
    pairs = [(a, b) for a, b in zip(*seen, strict=True) if a.n_events <= ring]
    if not pairs:
        return "no evaluation within the ring"
    score = max(abs(a.trace_score - b.trace_score) for a, b in pairs)
    residual = max(
        (
            abs(
                a.per_transition_residuals.get(name, 0.0)
                - b.per_transition_residuals.get(name, 0.0)
            )
            for a, b in pairs
            for name in a.per_transition_residuals.keys() | b.per_transition_residuals.keys()
        ),
        default=0.0,
    )
    return f"{len(pairs)} evaluations within the ring: max |score diff| {score:.1e}, " + (
        f"max |residual diff| {residual:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--lengths", default="10,200")
    parser.add_argument("--open-cases", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--policy", choices=["close", "every-event", "both"], default="both")
    parser.add_argument("--model", type=Path, default=REFERENCE_MODEL)
    parser.add_argument("--path", choices=["records", "columns", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        model = incremental_model(Path(directory), args.model)
        if model != args.model:
            print(f"{args.model.name} declares no incremental scoring: its recipe re-exported")
        measure(Scorer(model), args)


def measure(scorer: Scorer, args: argparse.Namespace) -> None:
    policies = {"close": ["close"], "every-event": ["every-event", "incremental"]}.get(
        args.policy, ["close", "every-event", "incremental"]
    )
    paths = ["records", "columns"] if args.path == "both" else [args.path]
    print(
        f"{'policy':<12}{'length':>7}{'path':>9}{'events/s':>11}{'evals':>9}"
        f"{'us/eval':>9}{'model':>8}{'records':>9}{'rest':>8}{'speed-up':>10}"
    )
    for length in (int(x) for x in args.lengths.split(",")):
        stream = generate(max(1, args.events // length), length, args.open_cases)
        events = stream.events(1.7e9)
        batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
        per_eval: dict[str, tuple[float, float]] = {}
        for policy in policies:
            best: dict[str, Timings] = {}
            for _ in range(args.repeat):
                # The paths take turns, so a busy neighbour slows both alike.
                for path in paths:
                    t = run_once(
                        scorer, batches, policy=policy, open_cases=args.open_cases, path=path
                    )
                    if path not in best or t.total < best[path].total:
                        best[path] = t
            for path, t in best.items():
                n = max(1, t.evaluations)
                rest = t.total - t.model - t.records
                ratio = best["records"].total / t.total if "records" in best else float("nan")
                print(
                    f"{policy:<12}{length:>7}{path:>9}{len(events) / t.total:>11,.0f}"
                    f"{t.evaluations:>9}{1e6 * t.total / n:>9.2f}{1e6 * t.model / n:>8.2f}"
                    f"{1e6 * t.records / n:>9.2f}{1e6 * rest / n:>8.2f}{ratio:>9.2f}x"
                )
                per_eval[policy] = (t.total / n, t.model / n)
        if "incremental" in per_eval:
            (whole, whole_model), (window, window_model) = (
                per_eval["every-event"], per_eval["incremental"]
            )  # fmt: skip
            print(
                f"{'':<12}{length:>7}  incremental / whole ring: us/eval x{window / whole:.2f}, "
                f"model x{window_model / whole_model:.2f}"
            )
            print(f"{'':<12}{length:>7}  {disagreement(scorer, batches, args.open_cases)}")


if __name__ == "__main__":
    main()
