"""What isolating scoring failures costs: nothing on the happy path, a bisection when a run fails.

Scores batches of closed cases from the bundled log with the reference model, the evaluator's
scoring failures isolated or not, and prints the median time per batch and the session runs per
batch. Then the same batches with failing cases in them (a copy of the model that fails inside
onnxruntime for cases of 50 or more events) and with a model that fails on every case.

    .venv/bin/python bench/isolation.py [--repeats 30] [--sizes 1 100 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.failing_model import failing_copy  # noqa: E402

from casewatch import StreamingEvaluator, StreamingEvent  # noqa: E402
from casewatch.errors import ModelError  # noqa: E402
from casewatch.offline.logs import read_log  # noqa: E402

MODEL = ROOT / "models" / "reference.onnx"
LOG = ROOT / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
LONG_NAMES = ("Create PR", "Approve PO 1", "Release PR", "Create PO")


def batch(traces: list[Any], size: int, failing: int, tag: str) -> list[StreamingEvent]:
    """``size`` closed cases, the last ``failing`` of them 60 events long."""
    events: list[StreamingEvent] = []
    for i in range(size):
        case_id = f"{tag}-{i}"
        if i >= size - failing:
            names = [LONG_NAMES[j % len(LONG_NAMES)] for j in range(60)]
        else:
            names = [e.name for e in traces[i % len(traces)].events]
        for j, name in enumerate(names):
            events.append(StreamingEvent(case_id, name, close=j == len(names) - 1))
    return events


def timed(
    model: Path, isolate: bool, size: int, failing: int, repeats: int, traces: list[Any]
) -> tuple[float, float, int]:
    """Median milliseconds per scored batch, session runs per batch, failures per batch."""
    evaluator = StreamingEvaluator(model, isolate_scoring_failures=isolate)
    runs = 0
    run: Callable[..., Any] = evaluator.scorer.run

    def counting(features: Any, batch_size: int) -> Any:
        nonlocal runs
        runs += 1
        return run(features, batch_size)

    evaluator.scorer.run = counting  # type: ignore[method-assign]
    batches = [batch(traces, size, failing, f"r{r}") for r in range(repeats + 1)]
    evaluator.on_events(batches[0])  # warm-up
    runs, evaluator.scoring_failures[:] = 0, []
    seconds = []
    for events in batches[1:]:
        started = time.perf_counter()
        # The every-case rule raises; the batch's time is still what isolation cost.
        with contextlib.suppress(ModelError):
            evaluator.on_events(events)
        seconds.append(time.perf_counter() - started)
    failures = len(evaluator.scoring_failures) / repeats
    return statistics.median(seconds) * 1000, runs / repeats, round(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 2000])
    args = parser.parse_args()
    traces = read_log(LOG)
    with tempfile.TemporaryDirectory() as tmp:
        at_fifty = failing_copy(MODEL, Path(tmp) / "fifty.onnx", at_events=50)
        always = failing_copy(MODEL, Path(tmp) / "always.onnx", at_events=0)
        print(f"{'case':<34} {'batch':>6} {'ms/batch':>9} {'runs':>7} {'failed':>7}")
        for size in args.sizes:
            rows = [
                ("happy path, not isolated", MODEL, False, 0),
                ("happy path, isolated", MODEL, True, 0),
                ("1 failing case, isolated", at_fifty, True, 1),
                ("10 failing cases, isolated", at_fifty, True, 10),
                ("every case failing, isolated", always, True, 0),
            ]
            for label, model, isolate, failing in rows:
                if failing > size:
                    continue
                ms, runs, failed = timed(model, isolate, size, failing, args.repeats, traces)
                print(f"{label:<34} {size:>6} {ms:>9.2f} {runs:>7.1f} {failed:>7}")


if __name__ == "__main__":
    main()
