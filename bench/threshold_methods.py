"""Held-out F1 and flagged share of each label-free threshold method, log x rate x method.

For each log at its native anomalous share and subsampled to 5% (every normal case kept, an
evenly spread subset of the anomalous ones), the scorer is fitted once on the first half of the
cases (labels never read); each method picks its threshold from the training cases' scores
alone, and the flags on the second half are compared with the labels. Cells read
``F1 / flagged share as a multiple of the true share``; the last column is the best F1 any
threshold reaches on the held-out scores (what a perfect label-free method could get). At rate
``0.0`` (every anomalous case removed) a cell is the share of the training cases flagged: the
alert volume a clean log would get.

    .venv/bin/python bench/threshold_methods.py ../shared/data/eventlogs/*.csv.gz \
        [--rates native 0.05] [--false-alarm-rate 0.005]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from casewatch.offline.logs import read_log
from casewatch.offline.quality import case_quality, subsample_anomalous
from casewatch.offline.replay import replay
from casewatch.offline.threshold import DEFAULT_FALSE_ALARM_RATE, METHODS, calibrate
from casewatch.offline.train import TrainOptions, split, train
from casewatch.scoring.scorer import Scorer

Scores = np.ndarray


def cells(training: Scores, held: Scores, labels: list[bool], rate: float) -> list[float]:
    """F1 and flagged/true share per method, then the best F1 over all thresholds; for a log
    without anomalous cases, NaN and the share of training cases flagged."""
    out: list[float] = []
    true_share = float(np.mean(labels))
    for method in METHODS:
        threshold = calibrate(training, method, rate)  # type: ignore[arg-type]
        if true_share == 0:
            out += [float("nan"), float(np.mean(training > threshold))]
            continue
        flagged = held > threshold
        out += [case_quality(labels, held.tolist(), flagged.tolist()).f1,
                float(flagged.mean()) / true_share]  # fmt: skip
    if true_share == 0:
        return [*out, float("nan")]
    candidates = np.unique(held)
    out.append(
        max(case_quality(labels, held.tolist(), (held >= c).tolist()).f1 for c in candidates)
    )
    return out


def render(row: list[float]) -> list[str]:
    pairs = [(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
    return [f"flags {x:.1%}" if np.isnan(f1) else f"{f1:.3f} / {x:.1f}x" for f1, x in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--rates", nargs="+", default=["native", "0.05"])
    parser.add_argument("--false-alarm-rate", type=float, default=DEFAULT_FALSE_ALARM_RATE)
    args = parser.parse_args()
    methods = list(METHODS)
    print("| log | rate | " + " | ".join(methods) + " | best possible |")
    print("|---|---|" + "---|" * (len(methods) + 1), flush=True)
    groups: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rate in args.rates:
            for log in args.logs:
                traces = read_log(log)
                if rate != "native":
                    traces = subsample_anomalous(traces, float(rate))
                options = TrainOptions(name="methods", version="0", train_fraction=0.5)
                report = train(traces, Path(scratch) / "m.onnx", options, source=str(log))
                assert report.held_out is not None
                training, held_out = split(traces, 0.5)
                training_scores = replay(training, Scorer(report.path)).scores
                labels = [bool(t.label) for t in held_out]
                row = cells(training_scores, report.held_out.scores, labels, args.false_alarm_rate)
                kind = "bpic" if log.name.startswith("bpic") else "synthetic"
                groups.setdefault(f"{kind} {rate}", []).append(row)
                print(f"| {log.name} | {rate} | " + " | ".join(render(row)) + f" | {row[-1]:.3f} |")
    for name, rows in groups.items():
        mean = np.mean(rows, axis=0)
        worst = np.max(rows, axis=0)
        summary = [*(v for i in range(len(methods)) for v in (mean[2 * i], worst[2 * i + 1])), 0]
        best = "" if np.isnan(mean[-1]) else f"{mean[-1]:.3f}"
        print(
            f"| mean F1 / worst share, {name} | | " + " | ".join(render(summary)) + f" | {best} |"
        )


if __name__ == "__main__":
    main()
