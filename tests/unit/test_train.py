from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from casewatch import Scorer, StreamingEvaluator
from casewatch.events import StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.offline.replay import replay
from casewatch.offline.threshold import FLOOR, calibrate
from casewatch.offline.train import TrainOptions, train
from tests.unit.conftest import make_trace, normal_traces

REPO = Path(__file__).parents[2]
BUNDLED = REPO / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
SHARED = REPO.parent / "shared" / "data" / "eventlogs" / "p2p-0.3-1.csv.gz"


def with_anomalies() -> list[Trace]:
    traces = normal_traces(400)
    patterns = ["ACBE", "ABE", "AEBC", "ABCBDE", "BACE"]
    for n, i in enumerate(range(0, 400, 10)):
        traces[i] = make_trace(f"a{i}", patterns[n % len(patterns)], label=True)
    return traces


def test_labels_never_influence_the_model(tmp_path: Path) -> None:
    traces = with_anomalies()
    relabelled = [Trace(t.case_id, t.events, not t.label, "x", (0,)) for t in traces]
    first = train(traces, tmp_path / "a.onnx", TrainOptions(name="m", version="1"), source="x")
    second = train(relabelled, tmp_path / "b.onnx", TrainOptions(name="m", version="1"), source="x")
    assert first.threshold == second.threshold
    a, b = onnx.load(str(first.path)), onnx.load(str(second.path))
    assert a.graph.SerializeToString() == b.graph.SerializeToString()


def test_trained_model_flags_the_injected_anomalies(tmp_path: Path) -> None:
    report = train(with_anomalies(), tmp_path / "m.onnx",
                   TrainOptions(name="m", version="1", train_fraction=0.5), source="x")  # fmt: skip
    assert report.held_out is not None and report.held_out.quality is not None
    assert report.held_out.quality.f1 > 0.95
    card = report.card.read_text()
    assert "Labels in the log are never read" in card and "| precision |" in card
    assert Scorer(report.path).threshold == report.threshold
    contract = Scorer(report.path).contract
    assert contract.threshold_method == "mode"
    assert contract.false_alarm_rate == TrainOptions(name="m", version="1").false_alarm_rate
    assert contract.expected_flagged_share == pytest.approx(report.training_flag_rate)
    assert f"{report.training_flag_rate:.1%} of training cases score above it" in card


def test_threshold_methods() -> None:
    rng = np.random.default_rng(1)
    scores = np.concatenate([rng.normal(0.5, 0.3, 700), rng.normal(8, 1, 300)])
    assert 2 < calibrate(scores, "otsu") < 5
    assert calibrate(np.abs(rng.normal(0, 0.2, 1000)), "otsu") == FLOOR
    assert 2 < calibrate(scores, "mixture") < 5
    assert calibrate(np.abs(rng.normal(0, 0.2, 1000)), "mixture") == FLOOR
    assert 2 < calibrate(scores, "mode") < 5
    assert calibrate(scores, "plateau") >= FLOOR


def test_a_log_without_anomalies_flags_about_the_false_alarm_rate(tmp_path: Path) -> None:
    """A clean log with a long tail of rare legitimate variants must not raise an alarm per case."""
    rng = np.random.default_rng(3)
    variants = ["ABCE", "ABDE", "ABCCE", "ACBE", "ABCDE", "ABE"]
    weights = np.array([50, 30, 10, 5, 3, 2], dtype=float)
    picks = rng.choice(len(variants), size=3000, p=weights / weights.sum())
    traces = [make_trace(f"n{i}", variants[p]) for i, p in enumerate(picks)]
    for rate in (0.01, 0.05):
        options = TrainOptions(name="m", version="1", false_alarm_rate=rate)
        report = train(traces, tmp_path / "m.onnx", options, source="x")
        assert report.training_flag_rate <= 2 * rate


def test_false_alarm_rate_from_the_command_line_reaches_the_contract(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        "\n".join(
            json.dumps({"case_id": t.case_id, "activity": e.name, "attributes": e.attributes})
            for t in normal_traces(300)
            for e in t.events
        )
    )
    model = tmp_path / "m.onnx"
    result = run_cli("train", str(log), "--out", str(model), "--threshold-method", "evt",
                     "--false-alarm-rate", "0.02")  # fmt: skip
    assert result.returncode == 0, result.stderr
    contract = Scorer(model).contract
    assert (contract.threshold_method, contract.false_alarm_rate) == ("evt", 0.02)
    assert contract.expected_flagged_share is not None
    assert f"{contract.expected_flagged_share:.1%} of training cases above it" in result.stdout


def test_train_rejects_a_false_alarm_rate_out_of_range(tmp_path: Path) -> None:
    result = run_cli("train", str(BUNDLED), "--out", str(tmp_path / "m.onnx"),
                     "--false-alarm-rate", "0.7")  # fmt: skip
    assert result.returncode != 0
    assert "--false-alarm-rate must be in (0, 0.5)" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casewatch", *args], capture_output=True, text=True, check=False
    )


def test_train_then_score_protocol_prints_f1(tmp_path: Path) -> None:
    log = SHARED if SHARED.exists() else BUNDLED
    model = tmp_path / "m.onnx"
    trained = run_cli("train", str(log), "--train-fraction", "0.5", "--out", str(model))
    assert trained.returncode == 0, trained.stderr
    assert model.with_suffix(".md").exists()
    out = tmp_path / "evaluations.jsonl"
    scored = run_cli("score", str(log), "--model", str(model), "--skip-fraction", "0.5",
                     "--out", str(out))  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    f1 = float(scored.stdout.split("F1 ")[1].split()[0])
    assert f1 > 0.85
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2500 and all(r["closed"] for r in records)
    assert {"evaluation_id", "per_transition_residuals", "top_transitions", "model"} <= set(
        records[0]
    )


def test_every_event_policy_from_the_command_line(tiny_model: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text(
        "\n".join(
            json.dumps({"case_id": c, "activity": a, "attributes": {"user": u}})
            for c, a, u in [
                ("1", "A", "ann"),
                ("1", "B", "bob"),
                ("2", "A", "ann"),
                ("1", "E", "eve"),
            ]
        )
    )
    out = tmp_path / "e.jsonl"
    result = run_cli("score", str(log), "--model", str(tiny_model), "--policy", "every-event",
                     "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 4
    assert "no labels" in result.stderr


def test_reference_model_ships_and_validates() -> None:
    evaluator = StreamingEvaluator(REPO / "models" / "reference.onnx")
    assert evaluator.identity.name == "reference"
    assert (REPO / "models" / "reference.md").exists()


def drifting_traces(count: int) -> list[Trace]:
    """A process without a routine: each case takes a few of many rare steps, so nearly every
    transition of a new case is one training never had (as in a municipality's permit log)."""
    rng = np.random.default_rng(5)
    traces = []
    for i in range(count):
        steps = ["A", *(f"step {s}" for s in rng.choice(300, size=4, replace=False)), "E"]
        events = [
            StreamingEvent(f"d{i}", name, timestamp=1_700_000_000.0 + j)
            for j, name in enumerate(steps)
        ]
        traces.append(Trace(f"d{i}", events, False, None, ()))
    return traces


def test_a_process_that_keeps_changing_does_not_alarm_on_every_new_case(tmp_path: Path) -> None:
    """In-sample scores miss the change; the replay on time sees it and raises the threshold."""
    traces = drifting_traces(1000)
    options = TrainOptions(name="m", version="1", train_fraction=0.5)
    report = train(traces, tmp_path / "m.onnx", options, source="x")
    assert report.later_flag_rate is not None and report.later_flag_rate > 0.4
    assert report.held_out is not None
    training = replay(traces[:500], Scorer(report.path), policy="close").scores
    in_sample = calibrate(training, "mode", options.false_alarm_rate)
    assert float(np.mean(report.held_out.scores > in_sample)) > 0.5
    assert float(np.mean(report.held_out.flagged)) < 0.05
    assert "Replayed on time" in report.card.read_text()


def test_a_stable_process_keeps_its_in_sample_threshold(tmp_path: Path) -> None:
    options = TrainOptions(name="m", version="1", train_fraction=0.5)
    report = train(with_anomalies(), tmp_path / "m.onnx", options, source="x")
    assert report.later_flag_rate is not None and report.later_flag_rate < 0.4
    training = replay(with_anomalies()[:200], Scorer(report.path), policy="close").scores
    assert report.threshold == calibrate(training, "mode")
