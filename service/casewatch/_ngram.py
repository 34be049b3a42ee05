"""The reference scorer's statistics: smoothed n-gram and attribute tables fitted with numpy.

Each event is scored by how much less likely it is than the most likely alternative in the same
context: ``log max_j p(j | ctx) - log p(observed | ctx)``, 0 for the expected event and large for
one the process (almost) never produces. The context is the previous ``order - 1`` activities
(start of case padded), the end of a closed case is scored as a transition to END, and each
per-event categorical attribute is scored given its activity. Labels are never read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from casewatch._logs import Trace

FloatArray = npt.NDArray[np.float64]

MAX_ATTRIBUTE_VALUES = 2000
# An attribute with more distinct values than this share of its events is an identifier or a
# timestamp, not a category: leave it out.
MAX_DISTINCT_SHARE = 0.5
MAX_TABLE_ENTRIES = 8_000_000


@dataclass(frozen=True, slots=True)
class NGramTables:
    activities: list[str]
    order: int
    transition_scores: FloatArray  # [V] * order, V = T + 2 (unknown, start/END)
    attribute_names: list[str] = field(default_factory=list)
    attribute_values: list[list[str]] = field(default_factory=list)
    attribute_scores: list[FloatArray] = field(default_factory=list)  # each [V, C + 2]

    @property
    def vocabulary(self) -> int:
        return len(self.activities) + 2


def _surprise(probabilities: FloatArray) -> FloatArray:
    """log(max p) - log(p) along the last axis."""
    logp = np.log(probabilities)
    return np.asarray(logp.max(axis=-1, keepdims=True) - logp)


def _categorical_attributes(traces: Sequence[Trace], activities: set[str]) -> list[str]:
    counts: Counter[str] = Counter()
    distinct: dict[str, set[str]] = {}
    n_events = 0
    for trace in traces:
        for event in trace.events:
            n_events += 1
            for name, value in event.attributes.items():
                if isinstance(value, str):
                    counts[name] += 1
                    values = distinct.setdefault(name, set())
                    if len(values) <= MAX_ATTRIBUTE_VALUES:
                        values.add(str(value))
    chosen = []
    for name, seen in counts.items():
        values = distinct[name]
        if seen < 0.5 * n_events or len(values) > MAX_ATTRIBUTE_VALUES:
            continue
        if len(values) > MAX_DISTINCT_SHARE * seen or values <= activities:
            continue
        chosen.append(name)
    return sorted(chosen)


def fit_ngram(traces: Sequence[Trace], *, order: int = 3, alpha: float = 0.1) -> NGramTables:
    """Fit transition and attribute tables on complete traces."""
    activities = sorted({e.name for t in traces for e in t.events})
    if not activities:
        raise ValueError("no events to learn from")
    ids = {a: i for i, a in enumerate(activities)}
    t = len(activities)
    v = t + 2
    start = end = t + 1
    while order > 1 and v**order > MAX_TABLE_ENTRIES:
        order -= 1
    context_shape = (v,) * (order - 1)
    transitions = np.zeros((*context_shape, v))
    for trace in traces:
        sequence = [start] * (order - 1) + [ids[e.name] for e in trace.events] + [end]
        for position in range(order - 1, len(sequence)):
            transitions[tuple(sequence[position - order + 1 : position + 1])] += 1
    probabilities = _interpolate(transitions, alpha)
    attribute_names = _categorical_attributes(traces, set(activities))
    attribute_values: list[list[str]] = []
    attribute_scores: list[FloatArray] = []
    for name in attribute_names:
        values = sorted(
            {str(e.attributes[name]) for tr in traces for e in tr.events if name in e.attributes}
        )
        value_ids = {val: i for i, val in enumerate(values)}
        missing = len(values) + 1
        table = np.zeros((v, len(values) + 2))
        for trace in traces:
            for event in trace.events:
                value = event.attributes.get(name)
                table[ids[event.name], missing if value is None else value_ids[str(value)]] += 1
        scores = _surprise(_smooth_rows(table, alpha))
        scores[start] = 0.0  # padding rows never score
        attribute_values.append(values)
        attribute_scores.append(scores)
    return NGramTables(
        activities=activities,
        order=order,
        transition_scores=_surprise(probabilities),
        attribute_names=attribute_names,
        attribute_values=attribute_values,
        attribute_scores=attribute_scores,
    )


def _smooth_rows(counts: FloatArray, alpha: float) -> FloatArray:
    """Rows smoothed towards the marginal distribution (additive, Jelinek-Mercer style)."""
    marginal = (counts.sum(axis=0) + alpha) / (counts.sum() + alpha * counts.shape[-1])
    return np.asarray((counts + alpha * marginal) / (counts.sum(axis=-1, keepdims=True) + alpha))


def _interpolate(counts: FloatArray, alpha: float) -> FloatArray:
    """Interpolated estimates p(target | context): each order backs off to the shorter context."""
    if counts.ndim == 1:
        return np.asarray((counts + alpha) / (counts.sum() + alpha * counts.shape[0]))
    shorter = _interpolate(counts.sum(axis=0), alpha)
    return np.asarray((counts + alpha * shorter) / (counts.sum(axis=-1, keepdims=True) + alpha))
