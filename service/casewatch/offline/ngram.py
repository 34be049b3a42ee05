"""The reference scorer's statistics: smoothed n-gram and attribute tables fitted with numpy.

Each event is scored by how much less likely it is than the most likely alternative in the same
context: ``log max_j p(j | ctx) - log p(observed | ctx)``, 0 for the expected event and large for
one the process (almost) never produces. Labels are never read.

- Activities: n-gram over the previous ``order - 1`` activities (start padded), Witten-Bell
  interpolated with shorter contexts: a context followed by many different activities in
  training leaves more mass to the others, and at the bottom the unigram leaves the same share to
  an activity never seen in training, so a log whose activity set keeps growing expects new
  activities and one with a closed set does not.
- End of a closed case: END given the last activity only. Logs cut at an arbitrary moment (cases
  still running when the log was extracted) end after long contexts that complete cases never end
  after; the last activity alone still tells a plausible stop from an impossible one.
- Per-event categorical attributes: a mixture of "same value as the case's neighbouring event"
  (weight ``stay``, learnt per activity) and the value's distribution given the activity, smoothed
  Witten-Bell style so that long-tailed attributes (resources, products) leave real mass to
  values never seen in training. A case attribute that stays constant costs nothing even when
  its value is rare or new; a value that breaks the case's own pattern does.
- Each feature's surprises are shrunk so that their training 99th percentile is at most log 100
  for the activities and log 7 for an attribute. A case is judged on its most surprising event,
  so a feature that routinely produces rare values on normal cases (a resource pool with a long
  tail) would otherwise decide the score of every case; attributes get the lower cap because a
  legitimate value unseen in training is common for them and rare for the control flow (on the
  shared logs the attribute noise of normal cases was the main source of false alarms).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from casewatch.offline.expected import Expectations
from casewatch.offline.logs import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_ATTRIBUTE_VALUES = 2000
# An attribute with more distinct values than this share of its events is an identifier or a
# timestamp, not a category: leave it out.
MAX_DISTINCT_SHARE = 0.5
MAX_TABLE_ENTRIES = 8_000_000
# Training surprise quantile that is capped at TAIL_CAP, per feature.
TAIL_QUANTILE = 0.99
TAIL_CAP = math.log(100.0)
ATTRIBUTE_TAIL_CAP = math.log(7.0)


@dataclass(frozen=True, slots=True)
class AttributeModel:
    """Tables of one per-event attribute; rows are activity ids, columns value ids.

    Value id ``len(values)`` is unknown, ``len(values) + 1`` missing (and padding).
    """

    name: str
    values: list[str]
    probabilities: FloatArray  # [V, C + 2] p(value | activity)
    best: FloatArray  # [V] max over values of p(value | activity)
    stay: FloatArray  # [V] p(same value as the previous event | activity)
    scale: float


@dataclass(frozen=True, slots=True)
class NGramTables:
    activities: list[str]
    order: int
    transition_scores: FloatArray  # [V] * order, V = T + 2 (unknown, start/END), scaled
    end_scores: FloatArray  # [V] surprise of END after each activity, scaled
    transition_scale: float = 1.0
    attributes: list[AttributeModel] = field(default_factory=list)
    # The likeliest activity per context: what an explanation names as expected.
    expectations: Expectations | None = None

    @property
    def vocabulary(self) -> int:
        return len(self.activities) + 2

    @property
    def attribute_names(self) -> list[str]:
        return [a.name for a in self.attributes]


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


def _tail_scale(surprises: FloatArray, cap: float = TAIL_CAP) -> float:
    """Factor (at most 1) bringing the training tail of one feature's surprises down to ``cap``."""
    if surprises.size == 0:
        return 1.0
    tail = float(np.quantile(surprises, TAIL_QUANTILE))
    return min(1.0, cap / tail) if tail > 0 else 1.0


def fit_ngram(traces: Sequence[Trace], *, order: int = 3) -> NGramTables:
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
    sequences = [[ids[e.name] for e in trace.events] for trace in traces]
    windows: list[tuple[int, ...]] = []
    for sequence in sequences:
        padded = [start] * (order - 1) + sequence + [end]
        for position in range(order - 1, len(padded)):
            window = tuple(padded[position - order + 1 : position + 1])
            transitions[window] += 1
            windows.append(window)
    transition_probabilities = _witten_bell_ngram(transitions)
    transition_scores = _surprise(transition_probabilities)
    bigrams = _witten_bell_ngram(transitions.reshape(-1, v, v).sum(axis=0))
    end_scores = _surprise(bigrams)[:, end]
    end_scores[start] = 0.0  # an empty case never reaches the scorer
    seen = np.asarray(windows, dtype=np.int64)
    ends = seen[:, -1] == end
    training_surprises = np.where(ends, end_scores[seen[:, -2]], transition_scores[tuple(seen.T)])
    transition_scale = _tail_scale(training_surprises)
    activity_ids = np.asarray([a for s in sequences for a in s], dtype=np.int64)
    first = np.zeros(activity_ids.size, dtype=bool)
    first[np.cumsum([0, *(len(s) for s in sequences[:-1])])] = True
    attributes = [
        _fit_attribute(name, traces, activity_ids, first, v)
        for name in _categorical_attributes(traces, set(activities))
    ]
    return NGramTables(
        activities=activities,
        order=order,
        transition_scores=transition_scores * transition_scale,
        end_scores=end_scores * transition_scale,
        transition_scale=transition_scale,
        attributes=attributes,
        expectations=Expectations.of(transition_probabilities, bigrams),
    )


def _fit_attribute(
    name: str, traces: Sequence[Trace], activity_ids: IntArray, first: npt.NDArray[np.bool_], v: int
) -> AttributeModel:
    raw = [e.attributes.get(name) for tr in traces for e in tr.events]
    values = sorted({str(x) for x in raw if x is not None})
    value_ids = {val: i for i, val in enumerate(values)}
    missing = len(values) + 1
    observed = np.asarray([missing if x is None else value_ids[str(x)] for x in raw], np.int64)
    counts = np.zeros((v, len(values) + 2))
    np.add.at(counts, (activity_ids, observed), 1)
    probabilities = _witten_bell(counts)
    previous = np.r_[missing, observed[:-1]]
    follows = ~first
    repeats = np.bincount(activity_ids[follows & (observed == previous)], minlength=v)
    stay = (repeats + 1.0) / (np.bincount(activity_ids[follows], minlength=v) + 2.0)
    model = AttributeModel(name, values, probabilities, probabilities.max(axis=1), stay, 1.0)
    neighbours = Neighbours(
        previous=previous,
        has_previous=follows,
        next_activity=np.r_[activity_ids[1:], 0],
        following=np.r_[observed[1:], missing],
        has_next=np.r_[follows[1:], False],
    )
    surprises = attribute_surprise(model, activity_ids, observed, neighbours)
    return AttributeModel(
        name, values, probabilities, model.best, stay, _tail_scale(surprises, ATTRIBUTE_TAIL_CAP)
    )


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Per event: the value of the case's previous event and the activity and value of its next."""

    previous: IntArray
    has_previous: npt.NDArray[np.bool_]
    next_activity: IntArray
    following: IntArray
    has_next: npt.NDArray[np.bool_]


def _against(
    model: AttributeModel, stay: FloatArray, activity: IntArray, value: IntArray, other: IntArray
) -> FloatArray:
    """Surprise of ``value`` under stay * [value = other] + (1 - stay) * p(value | activity)."""
    changed = 1.0 - stay
    observed = stay * (value == other) + changed * model.probabilities[activity, value]
    likeliest = np.maximum(
        stay + changed * model.probabilities[activity, other], changed * model.best[activity]
    )
    return np.asarray(np.log(likeliest) - np.log(observed))


def attribute_surprise(
    model: AttributeModel, activity: IntArray, value: IntArray, around: Neighbours
) -> FloatArray:
    """Scaled surprise of each event's attribute value, as the exported graph computes it.

    A later event is judged against the previous one. The first event is judged against the
    second as well as against its activity, and counts only when both find it odd: a rare value
    the next event repeats is the case's own (a customer, a product), not an anomaly. A case of
    one event has nothing to compare its values with and they are not judged.
    """
    after_previous = _against(model, model.stay[activity], activity, value, around.previous)
    alone = np.log(model.best[activity]) - np.log(model.probabilities[activity, value])
    before_next = _against(
        model, model.stay[around.next_activity], activity, value, around.following
    )
    first = np.where(around.has_next, np.minimum(alone, before_next), 0.0)
    return np.asarray(np.where(around.has_previous, after_previous, first) * model.scale)


def _witten_bell(counts: FloatArray) -> FloatArray:
    """p(value | row), interpolated with the marginal in proportion to the row's distinct values.

    The marginal keeps ``distinct / (total + distinct)`` for the unknown column, so an attribute
    with a long tail in training expects new values in production, and a sharp one does not.
    """
    unknown = counts.shape[1] - 2
    totals = counts.sum(axis=0)
    distinct = float(np.count_nonzero(totals))
    marginal = totals / (totals.sum() + distinct)
    marginal[unknown] = distinct / (totals.sum() + distinct)
    marginal = np.maximum(marginal, 1e-9)  # columns never seen (missing) stay finite
    row_total = counts.sum(axis=1, keepdims=True)
    row_distinct = np.count_nonzero(counts, axis=1).astype(np.float64)[:, None]
    weight = np.where(row_total > 0, row_distinct, 1.0)
    return np.asarray((counts + weight * marginal) / (row_total + weight))


def _witten_bell_ngram(counts: FloatArray) -> FloatArray:
    """p(target | context) along the last axis, Witten-Bell interpolated with shorter contexts.

    The first axis is the oldest context position; summing it out gives the next shorter context.
    An unseen context is its shorter context. The unigram keeps ``distinct / (total + distinct)``
    for the unknown activity (id ``T``, second to last).
    """
    if counts.ndim == 1:
        total = counts.sum()
        distinct = float(np.count_nonzero(counts))
        base = counts / (total + distinct)
        base[-2] += distinct / (total + distinct)
        # Every id keeps a finite log probability, whatever training held.
        return np.asarray(np.maximum(base, 1e-12))
    shorter = _witten_bell_ngram(counts.sum(axis=0))
    total = counts.sum(axis=-1, keepdims=True)
    distinct = np.count_nonzero(counts, axis=-1)[..., None].astype(np.float64)
    weight = np.where(total > 0, distinct, 1.0)
    return np.asarray((counts + weight * shorter) / (total + weight))
