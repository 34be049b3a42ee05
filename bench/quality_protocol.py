"""Detection quality under the evaluation protocol, on every labelled log given.

Train on the first half of each log's cases (labels never read, threshold chosen without labels),
score the second half with the daemon's evaluator, print a Markdown table.

    .venv/bin/python bench/quality_protocol.py ../shared/data/eventlogs/*.csv.gz
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from casewatch._logs import read_log
from casewatch._threshold import METHODS
from casewatch._train import TrainOptions, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--threshold-method", choices=sorted(METHODS), default="otsu")
    args = parser.parse_args()
    print("| log | precision | recall | F1 | PR-AUC | threshold |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for log in args.logs:
            options = TrainOptions(
                name="protocol", version="0", train_fraction=0.5,
                threshold_method=args.threshold_method,
            )  # fmt: skip
            report = train(read_log(log), Path(scratch) / "m.onnx", options, source=str(log))
            assert report.held_out is not None and report.held_out.quality is not None
            q = report.held_out.quality
            print(
                f"| {log.name} | {q.precision:.3f} | {q.recall:.3f} | {q.f1:.3f} | "
                f"{q.pr_auc:.3f} | {report.threshold:.3f} |"
            )


if __name__ == "__main__":
    main()
