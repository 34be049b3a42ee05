"""The numpy reference scorer and its ONNX export agree on real logs, fed as the daemon does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from casewatch.offline.export import build_model
from casewatch.offline.logs import read_log
from casewatch.offline.ngram import NGramTables, fit_ngram
from casewatch.offline.reference import score_features
from casewatch.offline.replay import replay
from casewatch.offline.train import split
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer

REPO = Path(__file__).parents[2]
BUNDLED = REPO / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
SHARED = REPO.parent / "shared" / "data" / "eventlogs"
SHARED_LOGS = sorted(SHARED.glob("*.csv.gz")) if SHARED.is_dir() else []
HELD_OUT_CASES = 300
# The graph computes in float32; scores reach about 20.
TOLERANCE = 1e-5


class RecordingScorer(Scorer):
    """The real onnxruntime scorer, keeping every batch it was fed and what it returned."""

    batches: list[tuple[Features, ScoreBatch]]

    def run(self, features: Features, batch_size: int) -> ScoreBatch:
        result = super().run(features, batch_size)
        self.batches.append(({k: v.copy() for k, v in features.items()}, result))
        return result


def _export(tables: NGramTables, path: Path, sequence_length: int) -> RecordingScorer:
    model = build_model(
        tables, name="parity", version="0", sequence_length=sequence_length, threshold=3.0,
        threshold_method="mode",
    )  # fmt: skip
    onnx.save(model, str(path))
    scorer = RecordingScorer(path)
    scorer.batches = []
    return scorer


def _assert_agree(log: Path, tmp_path: Path, sequence_length: int = 32) -> None:
    training, held_out = split(read_log(log), 0.5)
    tables = fit_ngram(training)
    scorer = _export(tables, tmp_path / "m.onnx", sequence_length)
    replay(held_out[:HELD_OUT_CASES], scorer, policy="every-event")
    assert scorer.batches
    for features, onnx_result in scorer.batches:
        reference = score_features(tables, features)
        np.testing.assert_allclose(reference.scores, onnx_result.scores, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(
            reference.residuals, onnx_result.residuals, rtol=0, atol=TOLERANCE
        )


def test_reference_and_export_agree_on_the_bundled_log(tmp_path: Path) -> None:
    _assert_agree(BUNDLED, tmp_path)


def test_reference_and_export_agree_when_cases_outgrow_the_ring(tmp_path: Path) -> None:
    _assert_agree(BUNDLED, tmp_path, sequence_length=4)


@pytest.mark.skipif(not SHARED_LOGS, reason=f"shared event logs not found at {SHARED}")
@pytest.mark.parametrize("log", SHARED_LOGS, ids=lambda p: p.name)
def test_reference_and_export_agree_on_every_shared_log(log: Path, tmp_path: Path) -> None:
    _assert_agree(log, tmp_path)
