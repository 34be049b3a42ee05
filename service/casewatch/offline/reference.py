"""The reference scorer in numpy: what the exported graph computes, from the same input tensors.

It reads the feature arrays the case store hands to the ONNX session (``sequence`` [B, K]
right-aligned and start-padded, ``event_attributes`` [B, K, E], ``n_events`` and ``closed``
[B, 1]) and returns the same per-transition residuals and trace scores, so the export can be
checked against it on real logs and the scoring rules can be read without reading a graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from casewatch.offline.ngram import AttributeModel, NGramTables

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ReferenceScores:
    """Residuals [B, T], trace scores [B] and the per-event scores [B, K] they come from."""

    residuals: FloatArray
    scores: FloatArray
    event_scores: FloatArray
    end_scores: FloatArray


def _shift(ids: IntArray, fill: int, *, later: bool) -> IntArray:
    """Each position's previous (or, ``later``, next) value along axis 1; ``fill`` past the edge."""
    out = np.full_like(ids, fill)
    if later:
        out[:, :-1] = ids[:, 1:]
    else:
        out[:, 1:] = ids[:, :-1]
    return out


def _against(
    model: AttributeModel, stay: FloatArray, activity: IntArray, value: IntArray, other: IntArray
) -> FloatArray:
    changed = 1.0 - stay
    observed = stay * (value == other) + changed * model.probabilities[activity, value]
    kept = stay + changed * model.probabilities[activity, other]
    likeliest = np.maximum(kept, changed * model.best[activity])
    return np.asarray(np.log(likeliest) - np.log(observed))


def _attribute_scores(
    model: AttributeModel, sequence: IntArray, values: IntArray, pad: int
) -> FloatArray:
    """A later event against the previous one; a first event against its activity and the next
    event, counting only when both find it odd; a lone first event is not judged."""
    missing = len(model.values) + 1
    has_previous = _shift(sequence, pad, later=False) != pad
    following_activity = _shift(sequence, pad, later=True)
    has_next = following_activity != pad
    after_previous = _against(
        model, model.stay[sequence], sequence, values, _shift(values, missing, later=False)
    )
    before_next = _against(
        model,
        model.stay[following_activity],
        sequence,
        values,
        _shift(values, missing, later=True),
    )
    alone = np.log(model.best[sequence]) - np.log(model.probabilities[sequence, values])
    first = np.where(has_next, np.minimum(alone, before_next), 0.0)
    return np.asarray(np.where(has_previous, after_previous, first) * model.scale)


def score_features(
    tables: NGramTables, features: Mapping[str, npt.NDArray[np.generic]]
) -> ReferenceScores:
    """Residuals and scores of a batch, as the exported graph defines them."""
    sequence = np.asarray(features["sequence"], dtype=np.int64)
    batch, k = sequence.shape
    t, v, order = len(tables.activities), tables.vocabulary, tables.order
    pad = t + 1
    padded = np.concatenate([np.full((batch, order - 1), pad, np.int64), sequence], axis=1)
    flat = np.zeros((batch, k), np.int64)
    for lag in range(order):
        flat = flat * v + padded[:, lag : lag + k]
    is_event = sequence != pad
    case_in_ring = np.asarray(features["n_events"], dtype=np.float64) <= k
    context_known = (np.arange(k)[None, :] >= order - 1) | case_in_ring
    event_scores = tables.transition_scores.reshape(-1)[flat] * (is_event & context_known)
    if tables.attributes:
        has_previous = _shift(sequence, pad, later=False) != pad
        attribute_valid = is_event & (has_previous | case_in_ring)
        values = np.asarray(features["event_attributes"], dtype=np.int64)
        for j, model in enumerate(tables.attributes):
            scores = _attribute_scores(model, sequence, values[:, :, j], pad)
            event_scores = np.maximum(event_scores, scores * attribute_valid)
    closed = np.asarray(features["closed"], dtype=np.float64)[:, 0]
    end = tables.end_scores[sequence[:, -1]] * closed
    by_activity = np.zeros((batch, v))
    rows = np.repeat(np.arange(batch), k)
    np.maximum.at(by_activity, (rows, sequence.reshape(-1)), event_scores.reshape(-1))
    np.maximum.at(by_activity, (np.arange(batch), sequence[:, -1]), end)
    score = np.maximum(event_scores.max(axis=1), end)
    return ReferenceScores(by_activity[:, :t], score, event_scores, end)
