"""Detection quality under the evaluation protocol, on every labelled log given.

Train on the first half of each log's cases (labels never read, threshold chosen without labels),
score the second half with the daemon's evaluator, print a Markdown table.

    .venv/bin/python bench/quality_protocol.py ../shared/data/eventlogs/*.csv.gz \
        [--card models/reference.md]

With ``--card`` the table also replaces the protocol section of a model card.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from casewatch.offline.logs import read_log
from casewatch.offline.threshold import METHODS
from casewatch.offline.train import TrainOptions, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--threshold-method", choices=sorted(METHODS), default="otsu")
    parser.add_argument("--card", type=Path, help="model card whose protocol section to replace")
    args = parser.parse_args()
    rows = ["| log | precision | recall | F1 | PR-AUC | threshold |", "|---|---|---|---|---|---|"]
    print("\n".join(rows), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for log in args.logs:
            options = TrainOptions(
                name="protocol", version="0", train_fraction=0.5,
                threshold_method=args.threshold_method,
            )  # fmt: skip
            report = train(read_log(log), Path(scratch) / "m.onnx", options, source=str(log))
            assert report.held_out is not None and report.held_out.quality is not None
            q = report.held_out.quality
            rows.append(
                f"| {log.name} | {q.precision:.3f} | {q.recall:.3f} | {q.f1:.3f} | "
                f"{q.pr_auc:.3f} | {report.threshold:.3f} |"
            )
            print(rows[-1], flush=True)
    if args.card:
        replace_section(args.card, args.threshold_method, rows)


START, END = "<!-- protocol:start -->", "<!-- protocol:end -->"


def replace_section(card: Path, method: str, rows: list[str]) -> None:
    section = "\n".join(
        [
            START,
            "## Protocol results on other logs",
            "",
            "Same training recipe, fitted on the first half of each log's cases (labels never "
            f"read, threshold method `{method}`), scored on the second half "
            "(`bench/quality_protocol.py`):",
            "",
            *rows,
            END,
        ]
    )
    text = card.read_text(encoding="utf-8")
    if START in text:
        text = re.sub(re.escape(START) + ".*" + re.escape(END), section, text, flags=re.S)
    else:
        text = text.replace("\n## Contract", f"\n{section}\n\n## Contract", 1)
    card.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
