"""Held-out F1 of each unsupervised threshold method, log x method.

The scorer is fitted once per log on the first half of its cases (labels never read); each method
picks its threshold from the training cases' scores alone, and the flags on the second half are
compared with the labels.

    .venv/bin/python bench/threshold_methods.py ../shared/data/eventlogs/*.csv.gz
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from casewatch.offline.logs import read_log
from casewatch.offline.quality import case_quality
from casewatch.offline.replay import replay
from casewatch.offline.threshold import METHODS, calibrate
from casewatch.offline.train import TrainOptions, split, train
from casewatch.scoring.scorer import Scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    methods = sorted(METHODS)
    print("| log | " + " | ".join(methods) + " | best possible |")
    print("|---|" + "---|" * (len(methods) + 1), flush=True)
    totals = dict.fromkeys(methods, 0.0)
    with tempfile.TemporaryDirectory() as scratch:
        for log in args.logs:
            traces = read_log(log)
            options = TrainOptions(name="methods", version="0", train_fraction=0.5)
            report = train(traces, Path(scratch) / "m.onnx", options, source=str(log))
            assert report.held_out is not None
            training, held_out = split(traces, 0.5)
            training_scores = replay(training, Scorer(report.path)).scores
            scores = report.held_out.scores
            labels = [bool(t.label) for t in held_out]
            cells = []
            for method in methods:
                threshold = calibrate(training_scores, method)  # type: ignore[arg-type]
                f1 = case_quality(labels, scores.tolist(), (scores > threshold).tolist()).f1
                totals[method] += f1 / len(args.logs)
                cells.append(f"{f1:.3f} ({threshold:.2f})")
            best = max(
                case_quality(labels, scores.tolist(), (scores >= s).tolist()).f1
                for s in set(scores)
            )
            print(f"| {log.name} | " + " | ".join(cells) + f" | {best:.3f} |", flush=True)
    print("| mean | " + " | ".join(f"{totals[m]:.3f}" for m in methods) + " | |")


if __name__ == "__main__":
    main()
