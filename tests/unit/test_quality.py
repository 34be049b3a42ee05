from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from casewatch.offline.quality import CaseQuality, case_quality, recall_by_type, subsample_anomalous
from tests.unit.conftest import make_trace


def test_confusion_counts_and_rates() -> None:
    quality = case_quality(
        labels=[True, True, True, False, False],
        scores=[0.9, 0.8, 0.1, 0.7, 0.2],
        flagged=[True, True, False, True, False],
    )

    assert (quality.n_cases, quality.n_anomalous, quality.n_flagged) == (5, 3, 3)
    assert (quality.tp, quality.fp, quality.fn) == (2, 1, 1)
    assert quality.precision == pytest.approx(2 / 3)
    assert quality.recall == pytest.approx(2 / 3)
    assert quality.f1 == pytest.approx(2 / 3)
    assert quality.pr_auc == pytest.approx(
        average_precision_score([1, 1, 1, 0, 0], [0.9, 0.8, 0.1, 0.7, 0.2])
    )


@pytest.mark.parametrize("n_cases", [1, 2, 7, 100, 2_000])
def test_pr_auc_matches_sklearn_average_precision(n_cases: int) -> None:
    rng = np.random.default_rng(n_cases)
    for _ in range(30):
        labels = rng.random(n_cases) < 0.3
        labels[0] = True
        # Rounding makes ties, which sklearn treats as one threshold.
        scores = np.round(rng.random(n_cases), 1)

        quality = case_quality(labels.tolist(), scores.tolist(), [False] * n_cases)

        assert quality.pr_auc == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_perfect_and_inverted_rankings() -> None:
    labels = [True, True, False, False]

    assert case_quality(labels, [4, 3, 2, 1], [True, True, False, False]).pr_auc == 1.0
    inverted = case_quality(labels, [1, 2, 3, 4], [False] * 4)
    assert inverted.pr_auc == pytest.approx(average_precision_score(labels, [1, 2, 3, 4]))


def test_no_positives_and_nothing_flagged() -> None:
    quality = case_quality([False, False], [0.3, 0.1], [False, False])

    assert math.isnan(quality.pr_auc)
    assert (quality.precision, quality.recall, quality.f1) == (0.0, 0.0, 0.0)

    empty = case_quality([], [], [])
    assert empty.n_cases == 0
    assert math.isnan(empty.pr_auc)


def test_as_dict_lists_every_field() -> None:
    quality = case_quality([True, False], [0.9, 0.1], [True, False])

    as_dict = quality.as_dict()

    assert list(as_dict) == list(CaseQuality.__dataclass_fields__)
    assert as_dict["tp"] == 1
    assert as_dict["f1"] == 1.0


def test_mismatched_lengths_and_nan_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        case_quality([True], [0.1, 0.2], [True])
    with pytest.raises(ValueError, match="NaN"):
        case_quality([True, False], [math.nan, 0.2], [True, False])
    with pytest.raises(ValueError, match="differ in length"):
        recall_by_type(["Insert"], [])


def test_recall_by_type_ignores_normal_cases() -> None:
    types = ["Insert", None, "Rework", "Insert", None, "Insert"]
    flagged = [True, True, False, False, False, True]

    assert recall_by_type(types, flagged) == {"Insert": pytest.approx(2 / 3), "Rework": 0.0}
    assert recall_by_type([None], [True]) == {}


def test_subsample_keeps_every_normal_case_and_spreads_the_anomalous_ones() -> None:
    traces = [make_trace(f"c{i}", "AB", label=i % 10 < 3) for i in range(1000)]
    kept = subsample_anomalous(traces, 0.05)
    anomalous = [int(t.case_id[1:]) for t in kept if t.label]
    assert sum(not t.label for t in kept) == 700
    assert len(anomalous) == round(0.05 * 700 / 0.95)
    assert anomalous[0] < 50 and anomalous[-1] > 950  # spread over the whole log
    assert [t.case_id for t in kept] == [t.case_id for t in traces if t in kept]  # log order
    assert subsample_anomalous(traces, 0.05) == kept
    assert subsample_anomalous(traces, 0.5) == traces


def test_subsample_rejects_a_rate_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="anomalous rate"):
        subsample_anomalous([], 1.0)
