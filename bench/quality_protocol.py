"""Detection quality under the evaluation protocol, on every labelled log given, at two rates.

Each log is evaluated at its native anomalous share and subsampled to 5% anomalous cases (every
normal case kept, an evenly spread subset of the anomalous ones). Train on the first half of the
(subsampled) log's cases, labels never read and the threshold chosen without labels, score the
second half with the daemon's evaluator, print a Markdown table.

    .venv/bin/python bench/quality_protocol.py ../shared/data/eventlogs/*.csv.gz \
        [--rates native 0.05] [--json results.json] [--card models/reference.md]

With ``--card`` the table also replaces the protocol section of a model card; ``--json`` keeps
the figures, and ``--before`` (figures kept earlier, e.g. ``bench/quality-reference-1.1.0.json``
for the previous reference recipe) adds a before/after table.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

from casewatch.offline.logs import read_log
from casewatch.offline.quality import subsample_anomalous
from casewatch.offline.threshold import DEFAULT_FALSE_ALARM_RATE, METHODS, ThresholdMethod
from casewatch.offline.train import TrainOptions, train

HEADER = [
    "| log | rate | true share | flagged share | flagged in training | precision | recall | F1 "
    "| PR-AUC | threshold |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def evaluate(
    log: Path, rate: str, scratch: Path, method: ThresholdMethod, false_alarm_rate: float
) -> dict[str, float]:
    traces = read_log(log)
    if rate != "native":
        traces = subsample_anomalous(traces, float(rate))
    options = TrainOptions(
        name="protocol", version="0", train_fraction=0.5,
        threshold_method=method, false_alarm_rate=false_alarm_rate,
    )  # fmt: skip
    report = train(traces, scratch / "m.onnx", options, source=str(log))
    assert report.held_out is not None and report.held_out.quality is not None
    q = report.held_out.quality
    return {
        "true_share": q.n_anomalous / q.n_cases,
        "flagged_share": q.n_flagged / q.n_cases,
        "precision": q.precision,
        "recall": q.recall,
        "f1": q.f1,
        "pr_auc": q.pr_auc,
        "threshold": report.threshold,
        "training_flagged_share": report.training_flag_rate,
        # The recipe fitted on the earlier half of the training cases, on the later half.
        "later_flagged_share": (
            float("nan") if report.later_flag_rate is None else report.later_flag_rate
        ),
    }


def row(log: str, rate: str, r: dict[str, float]) -> str:
    return (
        f"| {log} | {rate} | {r['true_share']:.3f} | {r['flagged_share']:.3f} | "
        f"{r['training_flagged_share']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['f1']:.3f} | {r['pr_auc']:.3f} | {r['threshold']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--rates", nargs="+", default=["native", "0.05"])
    parser.add_argument("--threshold-method", choices=sorted(METHODS), default="mode")
    parser.add_argument("--false-alarm-rate", type=float, default=DEFAULT_FALSE_ALARM_RATE)
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--before", type=Path, help="earlier --json figures to compare with")
    parser.add_argument("--card", type=Path, help="model card whose protocol section to replace")
    args = parser.parse_args()
    rows = list(HEADER)
    print("\n".join(rows), flush=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rate in args.rates:
            for log in args.logs:
                figures = evaluate(
                    log, rate, Path(scratch), args.threshold_method, args.false_alarm_rate
                )
                results.setdefault(log.name, {})[rate] = figures
                rows.append(row(log.name, rate, figures))
                print(rows[-1], flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.before:
        comparison = compare(json.loads(args.before.read_text(encoding="utf-8")), results)
        print("", *comparison, sep="\n")
        rows += ["", *comparison]
    if args.card:
        replace_section(args.card, rows)


FIGURES = [("F1", "f1"), ("precision", "precision"), ("recall", "recall"), ("PR-AUC", "pr_auc"),
           ("flagged share", "flagged_share")]  # fmt: skip


def compare(
    before: dict[str, dict[str, dict[str, float]]], after: dict[str, dict[str, dict[str, float]]]
) -> list[str]:
    """Before/after rows for every log and rate present in both, ``before -> after`` per cell."""
    out = [
        "| log | rate | true share | " + " | ".join(name for name, _ in FIGURES) + " |",
        "|---|---|---|" + "---|" * len(FIGURES),
    ]
    rates = sorted({r for figures in after.values() for r in figures}, key=lambda r: r != "native")
    for rate in rates:
        for log in sorted(after):
            if rate not in after[log] or rate not in before.get(log, {}):
                continue
            old, new = before[log][rate], after[log][rate]
            cells = [f"{old[key]:.3f} → {new[key]:.3f}" for _, key in FIGURES]
            out.append(f"| {log} | {rate} | {new['true_share']:.3f} | " + " | ".join(cells) + " |")
    return out


START, END = "<!-- protocol:start -->", "<!-- protocol:end -->"


def replace_section(card: Path, rows: list[str]) -> None:
    section = "\n".join(
        [
            START,
            "## Protocol results on other logs",
            "",
            "Same training recipe, fitted on the first half of each log's cases (labels never "
            "read, threshold chosen without labels), scored on the second half, at the log's "
            "native anomalous share and subsampled to 5% anomalous cases "
            "(`bench/quality_protocol.py`). A second table, when present, compares each figure "
            "with the previous recipe's (before → after):",
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
