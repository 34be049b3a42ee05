"""The reference graph's explanation outputs: scores unchanged, and what they name is what the
n-gram and attribute tables expect, with probabilities that agree with the event scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from casewatch.offline.export import build_model
from casewatch.offline.logs import read_log
from casewatch.offline.ngram import NGramTables, fit_ngram
from casewatch.offline.replay import replay
from casewatch.offline.train import split
from casewatch.scoring.explanations import PositionExplanations
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer
from tests.conftest import BUNDLED_LOG, ROOT

SHARED_LOG = ROOT.parent / "shared" / "data" / "eventlogs" / "small-0.3-1.csv.gz"
LOG = SHARED_LOG if SHARED_LOG.exists() else BUNDLED_LOG
HELD_OUT_CASES = 300


class RecordingScorer(Scorer):
    """The real scorer, keeping every batch it was fed and what it returned."""

    batches: list[tuple[Features, ScoreBatch]]

    def run(self, features: Features, batch_size: int) -> ScoreBatch:
        result = super().run(features, batch_size)
        self.batches.append(({k: v.copy() for k, v in features.items()}, result))
        return result


def _export(tables: NGramTables, path: Path) -> RecordingScorer:
    model = build_model(
        tables, name="explained", version="0", sequence_length=16, threshold=3.0,
        threshold_method="mode",
    )  # fmt: skip
    onnx.save(model, str(path))
    scorer = RecordingScorer(path)
    scorer.batches = []
    return scorer


@pytest.fixture(scope="module")
def fitted() -> tuple[NGramTables, list[object]]:
    training, held_out = split(read_log(LOG), 0.5)
    return fit_ngram(training), list(held_out[:HELD_OUT_CASES])


@pytest.fixture(scope="module")
def batches(
    fitted: tuple[NGramTables, list[object]], tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Features, ScoreBatch, ScoreBatch]]:
    """Every batch of a held-out replay: scored and explained, and scored by the same graph
    exported without the explanation outputs."""
    tables, held_out = fitted
    directory = tmp_path_factory.mktemp("explained")
    explained = _export(tables, directory / "explained.onnx")
    plain = _export(dataclasses.replace(tables, expectations=None), directory / "plain.onnx")
    replay(held_out, explained, policy="every-event")  # type: ignore[arg-type]
    out = []
    for features, result in explained.batches:
        everyone = np.arange(len(result.scores))
        with_explanation = dataclasses.replace(
            result, explanation=explained.explain(features, everyone)
        )
        out.append((features, with_explanation, plain.run(features, len(result.scores))))
    return out


def _explanation(batch: ScoreBatch) -> PositionExplanations:
    assert batch.explanation is not None
    return batch.explanation


def test_scores_and_residuals_are_those_of_the_graph_without_explanations(
    batches: list[tuple[Features, ScoreBatch, ScoreBatch]],
) -> None:
    assert batches
    for _, explained, plain in batches:
        assert plain.explanation is None
        np.testing.assert_allclose(explained.scores, plain.scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(explained.residuals, plain.residuals, rtol=0, atol=1e-6)


def test_the_surprise_output_holds_the_event_scores_the_score_is_the_largest_of(
    batches: list[tuple[Features, ScoreBatch, ScoreBatch]],
) -> None:
    for _, explained, _ in batches:
        surprise = _explanation(explained).surprise
        np.testing.assert_allclose(surprise.max(axis=1), explained.scores, rtol=0, atol=1e-6)


def test_the_expected_activity_is_the_argmax_of_the_ngram_table_for_the_context(
    fitted: tuple[NGramTables, list[object]],
    batches: list[tuple[Features, ScoreBatch, ScoreBatch]],
) -> None:
    tables = fitted[0]
    v, order = tables.vocabulary, tables.order
    scores = tables.transition_scores.reshape(-1, v)  # surprise: 0 for the likeliest
    pad = len(tables.activities) + 1
    checked = 0
    for features, explained, _ in batches:
        x = _explanation(explained)
        sequence = features["sequence"].astype(np.int64)
        b, k = sequence.shape
        padded = np.concatenate([np.full((b, order - 1), pad), sequence], axis=1)
        context = np.zeros((b, k), np.int64)
        for lag in range(order - 1):
            context = context * v + padded[:, lag : lag + k]
        control = (x.feature[:, :k] == 0) & (sequence != pad)
        np.testing.assert_array_equal(
            x.expected[:, :k][control], np.argmin(scores[context], axis=2)[control]
        )
        # The probabilities of a context sum to one, so the likeliest one follows from the scores.
        best = 1.0 / np.exp(-scores[context] / tables.transition_scale).sum(axis=2)
        np.testing.assert_allclose(
            x.expected_probability[:, :k][control], best[control], rtol=1e-4, atol=1e-6
        )
        checked += int(control.sum())
    assert checked > 1000


def test_probabilities_are_in_range_and_agree_with_each_positions_surprise(
    fitted: tuple[NGramTables, list[object]],
    batches: list[tuple[Features, ScoreBatch, ScoreBatch]],
) -> None:
    tables = fitted[0]
    scales = np.asarray([tables.transition_scale] + [a.scale for a in tables.attributes])
    blamed_attributes = 0
    for _, explained, _ in batches:
        x = _explanation(explained)
        for p in (x.expected_probability, x.observed_probability):
            assert np.all((p >= 0) & (p <= 1 + 1e-6))
        assert np.all(x.observed_probability <= x.expected_probability * (1 + 1e-5) + 1e-9)
        assert set(np.unique(x.feature).tolist()) <= set(range(len(scales)))
        assert np.all(x.feature[:, -1] == 0)  # the end is always the control flow's
        odd = (x.surprise > 0.05) & (x.observed_probability > 1e-6)
        ratio = np.log(x.expected_probability[odd] / x.observed_probability[odd])
        np.testing.assert_allclose(
            ratio * scales[x.feature[odd]], x.surprise[odd], rtol=1e-3, atol=1e-3
        )
        blamed_attributes += int((odd & (x.feature > 0)).sum())
    assert blamed_attributes > 0


def test_an_expected_attribute_value_is_a_neighbours_or_the_likeliest_for_the_activity(
    fitted: tuple[NGramTables, list[object]],
    batches: list[tuple[Features, ScoreBatch, ScoreBatch]],
) -> None:
    tables = fitted[0]
    checked = 0
    for features, explained, _ in batches:
        x = _explanation(explained)
        sequence, attributes = features["sequence"], features["event_attributes"]
        k = sequence.shape[1]
        rows, columns = np.nonzero((x.feature[:, :k] > 0) & (x.surprise[:, :k] > 0))
        for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
            j = int(x.feature[row, column]) - 1
            likeliest = int(tables.attributes[j].probabilities[sequence[row, column]].argmax())
            neighbours = {
                int(attributes[row, c, j]) for c in (column - 1, column + 1) if 0 <= c < k
            }
            assert int(x.expected[row, column]) in neighbours | {likeliest}
            checked += 1
    assert checked > 0
