"""The HTML report: self-contained, every chart drawn, the flagged cases shown."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from casewatch.offline.logs import Trace
from casewatch.offline.report import collect, render
from casewatch.offline.svg import histogram
from casewatch.scoring.scorer import Scorer
from tests.conftest import BUNDLED_LOG, casewatch_command, casewatch_env
from tests.unit.conftest import make_trace, normal_traces


def _labelled() -> list[Trace]:
    normal = normal_traces(60, seed=3)
    odd = [
        Trace(t.case_id, t.events, True, kind, (1,))
        for t, kind in zip(
            [make_trace("<skip>", "ACE"), make_trace("late", "ABEC"), make_trace("x", "AEBC")],
            ["Skip", "Late", "Late"],
            strict=True,
        )
    ]
    return [*normal, *odd]


def test_the_page_is_self_contained_and_every_chart_is_drawn(tiny_model: Path) -> None:
    data = collect(
        _labelled(), Scorer(tiny_model), policy="close", title="tiny <log>", notes=["held-out"]
    )
    page = render(data)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "src=" not in page and "@import" not in page
    # The only URL is the SVG namespace: nothing is fetched.
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == 3
    assert page.count('class="bar"') >= 3
    assert page.count('class="point"') >= 2 * 80 // 2
    assert page.count('class="threshold"') == 2
    assert "tiny &lt;log&gt;" in page and "case &lt;skip&gt;" in page
    assert data.quality.n_flagged >= 1
    assert page.count('class="event blamed"') == len(data.cases) >= 1
    assert ">Skip</text>" in page and ">Late</text>" in page


def test_a_log_without_anomalies_says_so_instead_of_drawing_empty_curves(
    tiny_model: Path,
) -> None:
    page = render(
        collect(normal_traces(30), Scorer(tiny_model), policy="close", title="t", notes=[])
    )
    assert "precision and recall are undefined" in page
    assert page.count("<svg") == 1


def test_the_histogram_is_deterministic_and_puts_outliers_in_the_last_bin() -> None:
    scores = np.r_[np.linspace(0.0, 4.0, 400), 1000.0]
    labels = scores > 3.0
    first = histogram(scores, labels, 2.0)
    assert first == histogram(scores, labels, 2.0)
    counted = [int(n) for n in re.findall(r"<title>(\d+) cases", first)]
    assert sum(counted) == scores.size
    # The axis ends near the bulk of the scores: the outlier is counted in the last bin.
    last = re.findall(r"score ([\d.]+)-([\d.]+)</title>", first)[-1]
    assert float(last[1]) < 10


def test_evaluate_refuses_a_report_path_it_cannot_write_before_any_work(tmp_path: Path) -> None:
    result = subprocess.run(
        casewatch_command(
            "evaluate", str(BUNDLED_LOG), "--inject-rate", "0.05",
            "--report", str(tmp_path / "missing" / "report.html"),
        ),
        env=casewatch_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"casewatch evaluate: {tmp_path / 'missing'} is not a directory"
    ]


def test_evaluate_with_injection_writes_the_report_of_the_held_out_half(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = subprocess.run(
        casewatch_command(
            "evaluate", str(BUNDLED_LOG), "--inject-rate", "0.05", "--report", str(report)
        ),
        env=casewatch_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"report written to {report}" in result.stdout
    page = report.read_text()
    assert page.count("<svg") == 3
    assert "Held-out: the last 2500 cases, none used for training" in page


def test_evaluate_on_labels_with_the_bundled_model_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = subprocess.run(
        casewatch_command(
            "evaluate", str(BUNDLED_LOG), "--skip-fraction", "0.9", "--report", str(report)
        ),
        env=casewatch_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "scored by reference.onnx" in report.read_text()
