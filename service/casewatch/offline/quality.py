"""Case-level detection quality: how well flagged cases and scores match the ground-truth labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from casewatch.offline.logs.trace import Trace

T = TypeVar("T", bound=Trace)

__all__ = ["CaseQuality", "case_quality", "recall_by_type", "subsample_anomalous"]


@dataclass(frozen=True, slots=True)
class CaseQuality:
    """Confusion counts of the flagged cases, their precision/recall/F1, and the scores' PR-AUC.

    Precision is 0 when nothing is flagged, recall is 0 when nothing is anomalous, and ``pr_auc``
    (average precision) is NaN when nothing is anomalous.
    """

    n_cases: int
    n_anomalous: int
    n_flagged: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    pr_auc: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n_cases": self.n_cases,
            "n_anomalous": self.n_anomalous,
            "n_flagged": self.n_flagged,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "pr_auc": self.pr_auc,
        }


def case_quality(
    labels: Sequence[bool], scores: Sequence[float], flagged: Sequence[bool]
) -> CaseQuality:
    """Score the verdicts on each case (``True`` label = anomalous) against the ground truth."""
    if not len(labels) == len(scores) == len(flagged):
        raise ValueError(
            f"labels, scores and flagged differ in length: "
            f"{len(labels)}, {len(scores)}, {len(flagged)}"
        )
    truth = np.asarray(labels, dtype=bool)
    hit = np.asarray(flagged, dtype=bool)
    tp = int(np.count_nonzero(truth & hit))
    fp = int(np.count_nonzero(~truth & hit))
    fn = int(np.count_nonzero(truth & ~hit))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return CaseQuality(
        n_cases=int(truth.size),
        n_anomalous=tp + fn,
        n_flagged=tp + fp,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        pr_auc=_average_precision(truth, np.asarray(scores, dtype=np.float64)),
    )


def _average_precision(truth: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]) -> float:
    """Average precision as scikit-learn defines it: sum over thresholds of ΔRecall × Precision.

    Tied scores form one threshold, so the result does not depend on the order of the cases.
    """
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    positives = int(np.count_nonzero(truth))
    if positives == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_truth = scores[order], truth[order]
    # The last index of each run of equal scores is where that threshold's counts are read.
    cut = np.r_[np.flatnonzero(np.diff(ranked_scores)), ranked_scores.size - 1]
    true_positives = np.cumsum(ranked_truth)[cut]
    precision = true_positives / (cut + 1)
    recall_gain = np.diff(true_positives, prepend=0) / positives
    return float(np.sum(recall_gain * precision))


def recall_by_type(types: Sequence[str | None], flagged: Sequence[bool]) -> dict[str, float]:
    """Share of flagged cases per anomaly type; ``None`` types (normal cases) are left out."""
    if len(types) != len(flagged):
        raise ValueError(f"types and flagged differ in length: {len(types)}, {len(flagged)}")
    found: dict[str, list[int]] = {}
    for kind, hit in zip(types, flagged, strict=True):
        if kind is not None:
            counts = found.setdefault(kind, [0, 0])
            counts[0] += bool(hit)
            counts[1] += 1
    return {kind: hits / total for kind, (hits, total) in sorted(found.items())}


def subsample_anomalous(traces: Sequence[T], rate: float) -> list[T]:
    """Every normal case and an evenly spread subset of anomalous ones making ``rate`` of the cases.

    Deterministic, in the log's order; a log already at or below ``rate`` is returned whole.
    Unlabelled cases count as normal.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"anomalous rate must be in [0, 1), got {rate}")
    anomalous = [i for i, t in enumerate(traces) if t.label]
    normal = len(traces) - len(anomalous)
    wanted = round(rate * normal / (1 - rate))
    if wanted >= len(anomalous):
        return list(traces)
    picks = np.linspace(0, len(anomalous) - 1, wanted).round().astype(np.int64)
    keep = {anomalous[int(i)] for i in picks}
    return [t for i, t in enumerate(traces) if not t.label or i in keep]
