"""How a flagged case reads: its events in order, the event it is blamed on, what was expected.

A model with explanation outputs names the blamed event in the record itself (``explanation``,
see ``casewatch.scoring.blame``): its first blame is taken as it is, so the summary reads like
the record, with the model's expected activity or value and its probability.

For other models, the evaluation record names the activity with the largest residual
(``top_transitions``), not the event: an activity can occur several times in a case. Replaying
the case alone through the evaluator on every event finds the first event at which that
activity's residual reaches its final value, which is the blamed event.

The n-gram tables the score comes from are not in the ONNX file, so the expected activity is
found with the scorer itself: the case up to the blamed event is scored once per known
activity put in the blamed event's place (same attributes), in one model run, and the activity
with the smallest residual is the one the model finds least surprising there. The residual is
a surprise relative to the most likely event, shrunk per feature, so it does not convert back
into a probability; the explanation gives the residuals instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from casewatch.events import Blame, StreamingEvaluation, StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.scoring.blame import END_LABEL
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer

__all__ = [
    "CaseExplanation",
    "Expectation",
    "ExplainedEvent",
    "explain",
    "pick_flagged",
    "reason",
    "truth",
]

# Residuals are rounded to 6 decimals in the records; this absorbs the rounding.
_TOLERANCE = 1e-5


@dataclass(frozen=True, slots=True)
class ExplainedEvent:
    activity: str
    attributes: dict[str, str]  # only the attributes the model scores
    blamed: bool


@dataclass(frozen=True, slots=True)
class Expectation:
    """The least surprising activity at the blamed position, and its residual there; activity
    ``None`` means the case was expected to end before the blamed event. ``probability`` is
    the model's own, when it explains itself (the residual of its expectation is then 0)."""

    activity: str | None
    residual: float
    probability: float | None = None


@dataclass(frozen=True, slots=True)
class CaseExplanation:
    case_id: str
    score: float
    threshold: float
    anomalous: bool
    events: list[ExplainedEvent]
    blamed_position: int | None  # None when the record blames no activity of the case
    blamed_activity: str | None
    blamed_residual: float
    expected: Expectation | None
    label: bool | None
    anomaly_type: str | None
    # The record's first blame, when the model explains itself; ``reason`` is then its sentence.
    blame: Blame | None = None

    @property
    def ratio(self) -> float:
        """Score over threshold: above 1 is flagged."""
        return self.score / self.threshold if self.threshold > 0 else float("inf")


def explain(trace: Trace, final: StreamingEvaluation, scorer: Scorer) -> CaseExplanation:
    """The explanation of one case from its final evaluation."""
    if final.explanation and trace.events:
        return _from_blame(trace, final, scorer, final.explanation[0])
    blamed_activity = final.top_transitions[0].transition if final.top_transitions else None
    position = None
    expected = None
    if blamed_activity is not None and trace.events:
        position = _blamed_position(trace, blamed_activity, scorer)
    if position is not None:
        expected = _expected(trace, position, scorer)
    return CaseExplanation(
        case_id=trace.case_id,
        score=final.trace_score,
        threshold=final.threshold,
        anomalous=final.anomalous,
        events=_events(trace, scorer, position),
        blamed_position=position,
        blamed_activity=blamed_activity,
        blamed_residual=final.top_transitions[0].residual if final.top_transitions else 0.0,
        expected=expected,
        label=trace.label,
        anomaly_type=trace.anomaly_type,
    )


def _from_blame(
    trace: Trace, final: StreamingEvaluation, scorer: Scorer, blame: Blame
) -> CaseExplanation:
    """The record's own blame; the end of a case is marked on its last event."""
    position = min(blame.position, len(trace.events)) - 1
    expected = None
    if blame.attribute is None:
        activity = None if blame.expected == END_LABEL else blame.expected
        expected = Expectation(activity, 0.0, blame.expected_probability)
    return CaseExplanation(
        case_id=trace.case_id,
        score=final.trace_score,
        threshold=final.threshold,
        anomalous=final.anomalous,
        events=_events(trace, scorer, position),
        blamed_position=position,
        blamed_activity=trace.events[position].name,
        blamed_residual=blame.surprise,
        expected=expected,
        label=trace.label,
        anomaly_type=trace.anomaly_type,
        blame=blame,
    )


def _events(trace: Trace, scorer: Scorer, blamed: int | None) -> list[ExplainedEvent]:
    scored = [a.name for a in scorer.contract.event_attributes]
    return [
        ExplainedEvent(
            activity=event.name,
            attributes={k: str(event.attributes[k]) for k in scored if k in event.attributes},
            blamed=i == blamed,
        )
        for i, event in enumerate(trace.events)
    ]


def truth(case: CaseExplanation) -> str:
    """What the log's label says about the case; empty for an unlabelled log."""
    if case.label is None:
        return ""
    if not case.label:
        return "labelled normal" + (": a false alarm by the labels" if case.anomalous else "")
    return f"labelled {case.anomaly_type or 'anomalous'}"


def reason(case: CaseExplanation) -> str:
    """Why the blamed event is blamed, in one line: the record's sentence when it has one."""
    if case.blame is not None:
        return case.blame.reason
    blame = f"residual {case.blamed_residual:.2f}"
    expected = case.expected
    if expected is None:
        return blame
    if expected.activity is None:
        return f"{blame}; expected the case to end before it (residual {expected.residual:.2f})"
    if expected.activity != case.blamed_activity:
        return f"{blame}; expected {expected.activity} (residual {expected.residual:.2f})"
    event = case.events[case.blamed_position] if case.blamed_position is not None else None
    if event is not None and event.attributes:
        return f"{blame}; the activity is expected here, its {', '.join(event.attributes)} is not"
    return f"{blame}; the activity is expected here, the case ending after it is not"


def pick_flagged(
    traces: Sequence[Trace], finals: Mapping[str, StreamingEvaluation], limit: int
) -> list[Trace]:
    """Up to ``limit`` flagged cases in log order, one per anomaly type before any repeats, so a
    handful of examples shows as many kinds of deviation as the log has."""
    flagged = [t for t in traces if t.case_id in finals and finals[t.case_id].anomalous]
    picked: list[Trace] = []
    seen: set[str | None] = set()
    for trace in flagged:
        if len(picked) < limit and trace.anomaly_type not in seen:
            seen.add(trace.anomaly_type)
            picked.append(trace)
    chosen = {t.case_id for t in picked}
    picked.extend(t for t in flagged if t.case_id not in chosen)
    return picked[:limit]


def _as_case(events: list[StreamingEvent], case_id: str, *, close: bool) -> list[StreamingEvent]:
    last = len(events) - 1
    return [
        msgspec.structs.replace(e, case_id=case_id, close=close and i == last)
        for i, e in enumerate(events)
    ]


def _blamed_position(trace: Trace, activity: str, scorer: Scorer) -> int | None:
    evaluator = StreamingEvaluator(scorer, score_on_every_event=True)
    evaluations = evaluator.on_events(_as_case(trace.events, trace.case_id, close=True))
    if not evaluations:
        return None
    final = evaluations[-1].per_transition_residuals.get(activity, 0.0)
    for i, evaluation in enumerate(evaluations):
        reached = evaluation.per_transition_residuals.get(activity, 0.0) >= final - _TOLERANCE
        if reached and trace.events[i].name == activity:
            return i
    # The activity's residual came from the end of the case (charged to its last activity).
    matches = [i for i, e in enumerate(trace.events) if e.name == activity]
    return matches[-1] if matches else None


def _expected(trace: Trace, position: int, scorer: Scorer) -> Expectation | None:
    observed = trace.events[position]
    prefix = trace.events[:position]
    # The candidate keeps the blamed event's attributes, or takes the previous event's, whichever
    # surprises less: an attribute value that is odd for the candidate activity only must not
    # hide that the activity itself was expected.
    attribute_sets = [observed.attributes]
    if prefix:
        attribute_sets.append(prefix[-1].attributes)
    batch: list[StreamingEvent] = []
    owners: dict[str, str] = {}
    for k, candidate in enumerate(scorer.activities):
        for j, attributes in enumerate(attribute_sets):
            case_id = f"{trace.case_id}\x00{k}\x00{j}"
            owners[case_id] = candidate
            replaced = msgspec.structs.replace(observed, name=candidate, attributes=attributes)
            batch.extend(_as_case([*prefix, replaced], case_id, close=False))
    ended = f"{trace.case_id}\x00end"
    if prefix:
        batch.extend(_as_case(prefix, ended, close=True))
    evaluator = StreamingEvaluator(scorer, score_on_every_event=True)
    residuals: dict[str | None, float] = {}
    before = end = None
    for evaluation in evaluator.on_events(batch):
        if evaluation.case_id == ended:
            end = evaluation if evaluation.closed else end
        elif evaluation.n_events == position + 1:
            candidate = owners[evaluation.case_id]
            residual = evaluation.per_transition_residuals.get(candidate, 0.0)
            residuals[candidate] = min(residual, residuals.get(candidate, residual))
        elif evaluation.n_events == position:
            before = evaluation
    if end is not None and before is not None:
        residuals[None] = _end_residual(before, end, prefix[-1].name)
    if not residuals:
        return None
    # Ties (several activities equally expected) go to the observed one, then to contract order.
    best = min(residuals, key=lambda a: (residuals[a], a != observed.name))
    return Expectation(activity=best, residual=residuals[best])


def _end_residual(before: StreamingEvaluation, end: StreamingEvaluation, last: str) -> float:
    """The end's surprise is charged to the last activity: it shows where closing raises that
    activity's residual; where it does not, the end is no more surprising than the case was."""
    closed = end.per_transition_residuals.get(last, 0.0)
    return closed if closed > before.per_transition_residuals.get(last, 0.0) + _TOLERANCE else 0.0
