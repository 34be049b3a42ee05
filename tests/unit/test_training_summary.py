"""The training summary: computed at training time, stored in the ONNX file, read back by the
scorer; a model without one (or with a broken one) still loads and scores the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import structlog

from casewatch import StreamingEvent
from casewatch.cli.main import main
from casewatch.offline.replay import replay
from casewatch.offline.training_summary import score_bins, summarise_training
from casewatch.scoring.scorer import Scorer
from casewatch.scoring.training_summary import (
    SUMMARY_METADATA_KEY,
    AttributeValues,
    ScoreBins,
    TrainingSummary,
    embed_training_summary,
    read_training_summary,
)
from tests.conftest import REFERENCE_MODEL
from tests.unit.conftest import make_trace, normal_traces


def without_summary(model: Path, out: Path) -> Path:
    proto = onnx.load(str(model))
    for prop in list(proto.metadata_props):
        if prop.key == SUMMARY_METADATA_KEY:
            proto.metadata_props.remove(prop)
    onnx.save(proto, str(out))
    return out


def test_a_summary_round_trips_through_an_onnx_file(tiny_model: Path, tmp_path: Path) -> None:
    summary = TrainingSummary(
        cases=3,
        events=7,
        score_bins=ScoreBins(edges=[0.5, 2.0], shares=[0.25, 0.5, 0.25]),
        threshold=2.0,
        flagged_share=0.25,
        activity_counts={"A": 3, "B": 4},
        attributes=[AttributeValues(name="user", values_seen=7, value_counts={"ann": 6, "bob": 1})],
    )
    model = onnx.load(str(tiny_model))
    embed_training_summary(model, summary)
    embed_training_summary(model, summary)  # replaces, never duplicates
    out = tmp_path / "with-summary.onnx"
    onnx.save(model, str(out))

    loaded = onnx.load(str(out))
    assert [p.key for p in loaded.metadata_props].count(SUMMARY_METADATA_KEY) == 1
    assert read_training_summary(loaded, origin=str(out)) == summary
    assert Scorer(out).training_summary == summary
    assert summary.expected_unknown_value_rate == pytest.approx(1 / 7)


def test_training_stores_the_summary_of_the_training_cases(tiny_model: Path) -> None:
    scorer = Scorer(tiny_model)
    summary = scorer.training_summary
    assert summary is not None
    training = normal_traces(300)
    assert summary.cases == len(training)
    assert summary.events == sum(len(t.events) for t in training)
    assert sum(summary.activity_counts.values()) == summary.events
    assert set(summary.activity_counts) <= set(scorer.activities)
    assert summary.threshold == scorer.threshold
    attributes = scorer.contract.event_attributes
    assert [a.name for a in summary.attributes] == [a.name for a in attributes]
    assert summary.attributes[0].values_seen == summary.events
    # The bins describe the training cases' final scores as the daemon's evaluator gives them.
    scores = replay(training, scorer).scores
    bins = summary.score_bins
    counts = np.bincount(bins.bin_of(scores), minlength=len(bins.shares))
    assert counts / len(scores) == pytest.approx(bins.shares)
    assert summary.flagged_share == pytest.approx(float(np.mean(scores > scorer.threshold)))


def test_tied_scores_merge_their_quantile_bins() -> None:
    scores = np.array([0.0] * 70 + [1.0, 2.0, 3.0] * 10)
    bins = score_bins(scores, bins=10)
    assert bins.edges[0] == 0.0
    assert bins.shares[0] == pytest.approx(0.7)
    assert sum(bins.shares) == pytest.approx(1.0)
    assert len(bins.edges) == len(set(bins.edges))
    # Every bin holds some training cases: none is empty by construction.
    assert min(bins.shares) > 0


def test_summary_counts_activities_and_attribute_values() -> None:
    traces = [make_trace("a", "ABE"), make_trace("b", "ABCE")]
    traces[1].events.append(StreamingEvent("b", "F", attributes={}))
    summary = summarise_training(
        traces, np.array([0.1, 3.0]), threshold=1.0, event_attributes=["user"]
    )
    assert summary.cases == 2 and summary.events == 8
    assert summary.activity_counts == {"A": 2, "B": 2, "E": 2, "C": 1, "F": 1}
    assert summary.attributes[0].values_seen == 7  # the F event carries no user
    assert summary.attributes[0].value_counts["cid"] == 1
    assert summary.flagged_share == 0.5


def test_a_model_without_a_summary_still_scores_the_same(tiny_model: Path, tmp_path: Path) -> None:
    bare = Scorer(without_summary(tiny_model, tmp_path / "bare.onnx"))
    assert bare.training_summary is None
    traces = normal_traces(40, seed=3)
    assert np.array_equal(replay(traces, bare).scores, replay(traces, Scorer(tiny_model)).scores)


def test_a_broken_summary_is_ignored_with_a_warning(tiny_model: Path, tmp_path: Path) -> None:
    model = onnx.load(str(without_summary(tiny_model, tmp_path / "bare.onnx")))
    entry = model.metadata_props.add()
    entry.key, entry.value = SUMMARY_METADATA_KEY, '{"cases": 0}'
    out = tmp_path / "broken.onnx"
    onnx.save(model, str(out))
    with structlog.testing.capture_logs() as logs:
        assert Scorer(out).training_summary is None
    assert [e["event"] for e in logs] == ["training_summary_invalid"]


def test_check_model_says_whether_drift_has_a_baseline(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-model", str(tiny_model)]) == 0
    assert "drift       training summary of 300 cases, " in capsys.readouterr().out
    bare = without_summary(tiny_model, tmp_path / "bare.onnx")
    assert main(["check-model", str(bare)]) == 0
    assert "drift       no training summary" in capsys.readouterr().out


def test_the_bundled_model_carries_its_training_summary() -> None:
    scorer = Scorer(REFERENCE_MODEL)
    summary = scorer.training_summary
    assert summary is not None
    assert summary.threshold == scorer.threshold
    assert summary.flagged_share == scorer.contract.expected_flagged_share
    assert len(summary.score_bins.shares) == 10
