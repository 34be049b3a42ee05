"""Training and evaluating on a log as a user exports it: pm4py CSV, Parquet, no labels."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from casewatch.offline.evaluate import report_lines
from casewatch.offline.evaluate_injected import evaluate_injected
from casewatch.offline.logs.trace import Trace
from tests.unit.conftest import normal_traces

PM4PY_HEADER = ["case:concept:name", "concept:name", "time:timestamp", "org:resource"]


def rows(traces: list[Trace]) -> list[list[str]]:
    # Newest events first, as exports sorted by time descending come: the reader must reorder.
    return [
        [t.case_id, e.name, dt.datetime.fromtimestamp(e.timestamp or 0, dt.UTC).isoformat(),
         e.attributes["user"]]
        for t in traces
        for e in reversed(t.events)
    ]  # fmt: skip


def write_pm4py_csv(path: Path, traces: list[Trace]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(PM4PY_HEADER)
        writer.writerows(rows(traces))
    return path


def write_parquet(path: Path, traces: list[Trace]) -> Path:
    columns = list(zip(*rows(traces), strict=True))
    stamps = [dt.datetime.fromisoformat(s) for s in columns[2]]
    table = pa.table(
        {
            "case:concept:name": list(columns[0]),
            "concept:name": list(columns[1]),
            "time:timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "org:resource": list(columns[3]),
        }
    )
    pq.write_table(table, path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casewatch", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("writer", [write_pm4py_csv, write_parquet], ids=["csv", "parquet"])
def test_train_without_flags(tmp_path: Path, writer: object) -> None:
    suffix = ".csv" if writer is write_pm4py_csv else ".parquet"
    log = writer(tmp_path / f"claims{suffix}", normal_traces(200))  # type: ignore[operator]
    model = tmp_path / "m.onnx"

    result = run_cli("train", str(log), "--out", str(model))

    assert result.returncode == 0, result.stderr
    assert "trained on 200 cases" in result.stdout
    assert model.exists()


def test_malformed_log_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    log = tmp_path / "broken.csv"
    log.write_text("case:concept:name,concept:name,time:timestamp\n1,A,soon\n", encoding="utf-8")

    result = run_cli("train", str(log), "--out", str(tmp_path / "m.onnx"))

    assert result.returncode == 1
    assert result.stderr == (
        f"casewatch train: {log}: line 2, column 'time:timestamp': invalid timestamp 'soon'\n"
    )


def test_evaluate_with_injection_on_an_unlabelled_log(tmp_path: Path) -> None:
    log = write_pm4py_csv(tmp_path / "claims.csv", normal_traces(400))

    result = run_cli("evaluate", str(log), "--inject-rate", "0.1", "--seed", "3")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trained on the first 200 cases" in out
    assert "held out 200 cases; injected one anomaly into 20 of them" in out
    assert "anomalous 20 (10.0%)" in out and "F1 " in out and "PR-AUC " in out
    assert "recall by anomaly type:" in out and "SkipSequence" in out


def test_evaluate_on_an_unlabelled_log_points_to_injection(tmp_path: Path) -> None:
    log = write_pm4py_csv(tmp_path / "claims.csv", normal_traces(10))

    result = run_cli("evaluate", str(log))  # the bundled model: no --model needed

    assert result.returncode != 0
    assert result.stderr == (
        "casewatch evaluate: the log has unlabelled cases (use --inject-rate R to inject)\n"
    )


def test_injected_evaluation_trains_on_the_first_half_only(tmp_path: Path) -> None:
    traces = [
        Trace(t.case_id, t.events, True, "Insert", (0,))  # labels in the log are ignored
        for t in normal_traces(300)
    ]

    outcome = evaluate_injected(
        traces, rate=0.1, seed=1, policy="close", workdir=tmp_path, source="claims.csv"
    )

    assert outcome.training_cases == 150
    assert outcome.trained is not None and outcome.trained.training_cases == 150
    held_out = outcome.injected.traces
    assert [t.case_id for t in held_out] == [t.case_id for t in traces[150:]]
    assert sum(t.label is True for t in held_out) == 15
    q = outcome.evaluation.quality
    assert (q.n_cases, q.n_anomalous) == (150, 15)
    # Made-up anomalies on a process this regular are easy: the scorer finds most of them.
    assert q.recall >= 0.8 and q.pr_auc >= 0.8
    report = "\n".join(report_lines(outcome.evaluation, "close", outcome.injected.counts))
    assert "anomalous 15 (10.0%)" in report and "cases)" in report


def test_injected_evaluation_with_a_given_model_does_not_train(
    tiny_model: Path, tmp_path: Path
) -> None:
    outcome = evaluate_injected(
        normal_traces(100, seed=9),
        rate=0.0,
        seed=1,
        policy="close",
        workdir=tmp_path,
        source="x.csv",
        model=tiny_model,
    )

    assert outcome.trained is None and not list(tmp_path.iterdir())
    q = outcome.evaluation.quality
    assert (q.n_cases, q.n_anomalous) == (50, 0)
