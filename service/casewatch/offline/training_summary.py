"""The training summary ``casewatch train`` stores in the model, for the daemon's drift metrics.

See ``casewatch.scoring.training_summary`` for what it holds and how the daemon reads it. The
score bins are cut at quantiles of the training cases' final scores; scores of this kind have
many ties (every case that follows a common path scores the same), so quantiles that fall
together are merged and each bin's share is the share of training cases really in it, never
the nominal 1/bins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from casewatch.offline.logs import Trace
from casewatch.scoring.training_summary import AttributeValues, ScoreBins, TrainingSummary

DEFAULT_SCORE_BINS = 10


def score_bins(scores: npt.NDArray[np.float64], bins: int = DEFAULT_SCORE_BINS) -> ScoreBins:
    """Bins at the ``bins``-quantiles of ``scores``, ties merged, with their shares."""
    if scores.size == 0:
        return ScoreBins(edges=[], shares=[1.0])
    # Edges at scores that occur (no interpolation), so that every right-closed bin holds one.
    inner = np.quantile(scores, np.arange(1, bins) / bins, method="inverted_cdf")
    # The top quantile equal to the maximum would leave the last bin empty by construction.
    edges = np.unique(inner[inner < scores.max()])
    counts = np.bincount(np.searchsorted(edges, scores, side="left"), minlength=edges.size + 1)
    shares = counts / scores.size
    return ScoreBins(edges=edges.tolist(), shares=shares.tolist())


def _attribute_values(traces: Sequence[Trace], names: Sequence[str]) -> list[AttributeValues]:
    summaries = []
    for name in names:
        values = Counter(
            str(value)
            for trace in traces
            for event in trace.events
            if (value := event.attributes.get(name)) is not None
        )
        summaries.append(
            AttributeValues(name=name, values_seen=values.total(), value_counts=dict(values))
        )
    return summaries


def summarise_training(
    traces: Sequence[Trace],
    final_scores: npt.NDArray[np.float64],
    *,
    threshold: float,
    event_attributes: Sequence[str],
) -> TrainingSummary:
    """The summary of ``traces`` (the training cases) scored ``final_scores`` at ``threshold``."""
    activities = Counter(event.name for trace in traces for event in trace.events)
    return TrainingSummary(
        cases=len(traces),
        events=activities.total(),
        score_bins=score_bins(final_scores),
        threshold=threshold,
        flagged_share=float(np.mean(final_scores > threshold)) if final_scores.size else 0.0,
        activity_counts=dict(activities),
        attributes=_attribute_values(traces, event_attributes),
    )
