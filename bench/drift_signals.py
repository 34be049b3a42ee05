"""Drift gauges of the bundled model on held-out p2p cases and on other logs.

Each log is replayed through the daemon's evaluator and drift window (the same code the daemon
runs, without Kafka) in batches; after every batch, once the window is full, the gauges are
read. Prints, per log, the last value and the range over the run of the score PSI, the
unknown-activity and unknown-value rates and the flagged share (with the training share it is
compared with), so the alert thresholds can be set between what held-out data of the training
process gives and what another process gives.

    python bench/drift_signals.py [--window 1000] [LOG ...]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.offline.logs import Trace, interleave, read_log
from casewatch.offline.train import split
from casewatch.telemetry.drift_series import DriftMonitor, DriftValues

ROOT = Path(__file__).resolve().parents[1]

MODEL = ROOT / "models" / "reference.onnx"
BUNDLED = ROOT / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
SHARED = ROOT.parent / "shared" / "data" / "eventlogs"
DEFAULT_LOGS = ("p2p-0.3-2", "bpic13-0.3-1", "small-0.3-1", "bpic15-0.3-2", "wide-0.3-2")
BATCH = 500
SIGNALS = ("score_psi", "unknown_activity_rate", "unknown_value_rate", "flagged_share")


def batches(events: Iterator[StreamingEvent], size: int) -> Iterator[list[StreamingEvent]]:
    while chunk := list(itertools.islice(events, size)):
        yield chunk


def run(traces: Sequence[Trace], window: int) -> tuple[list[DriftValues], DriftValues]:
    """Gauge values after every batch with a full window, and the last ones."""
    evaluator = StreamingEvaluator(MODEL)
    monitor = DriftMonitor(CollectorRegistry(), "casewatch", window)
    monitor.bind(evaluator.routing_counts)
    monitor.use_model(evaluator.scorer.training_summary, evaluator.identity.name)
    full: list[DriftValues] = []
    for batch in batches(interleave(traces, close_marker=True), BATCH):
        monitor.observe(evaluator.on_events(batch))
        if monitor.values.window_cases >= window:
            full.append(monitor.values)
    return full, monitor.values


def describe(name: str, full: list[DriftValues], last: DriftValues) -> str:
    cells = [f"{name:<22}"]
    for signal in SIGNALS:
        seen = [v for v in (getattr(values, signal) for values in full) if v is not None]
        final = getattr(last, signal)
        text = "-" if final is None else f"{final:.3f}"
        if seen:
            text += f" [{min(seen):.3f}-{max(seen):.3f}]"
        cells.append(f"{text:<22}")
    cells.append(f"{last.expected_flagged_share or 0:.3f}")
    return " ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("logs", nargs="*", default=list(DEFAULT_LOGS))
    args = parser.parse_args()
    header = ["log", *SIGNALS, "expected flagged"]
    print(" ".join(f"{h:<22}" for h in header))
    _, held_out = split(read_log(BUNDLED), 0.5)  # the cases the bundled model was not fitted on
    print(describe("p2p-0.3-1 held out", *run(held_out, args.window)))
    for name in args.logs:
        path = Path(name) if name.endswith(".gz") else SHARED / f"{name}.csv.gz"
        print(describe(path.name.removesuffix(".csv.gz"), *run(read_log(path), args.window)))


if __name__ == "__main__":
    main()
