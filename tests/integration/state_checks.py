"""What a correct run looks like, whatever crashes or rebalances happened on the way."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from casewatch import StreamingEvaluator
from casewatch.events import StreamingEvaluation, StreamingEvent


def halves(events: list[StreamingEvent]) -> tuple[list[StreamingEvent], list[StreamingEvent]]:
    """The first half of every case's events, then the rest, each in stream order."""
    lengths = Counter(e.case_id for e in events)
    seen: Counter[str] = Counter()
    first, rest = [], []
    for event in events:
        seen[event.case_id] += 1
        (first if seen[event.case_id] <= lengths[event.case_id] // 2 else rest).append(event)
    return first, rest


def uninterrupted_scores(model: Path, events: list[StreamingEvent]) -> dict[str, float]:
    """Final closed trace_score per case from one uninterrupted pass of the same evaluator."""
    evaluator = StreamingEvaluator(model)
    return {e.case_id: e.trace_score for e in evaluator.on_events(events) if e.closed}


def assert_like_an_uninterrupted_run(
    events: list[StreamingEvent], published: list[StreamingEvaluation], model: Path
) -> Counter[str]:
    """Every case closed once over all of its events, as scored without interruption.

    Redelivered evaluations are allowed but must repeat the evaluation_id. Returns how many
    closed evaluations each case got.
    """
    lengths = Counter(e.case_id for e in events)
    expected = uninterrupted_scores(model, events)
    closed: dict[str, list[StreamingEvaluation]] = defaultdict(list)
    for evaluation in published:
        if evaluation.closed:
            closed[evaluation.case_id].append(evaluation)
    missing = set(lengths) - set(closed)
    assert not missing, f"{len(missing)} cases without closed evaluation: {sorted(missing)[:5]}"
    for case, found in closed.items():
        assert {e.n_events for e in found} == {lengths[case]}, (case, [e.n_events for e in found])
        assert len({e.evaluation_id for e in found}) == 1, (case, found)
        assert {e.trace_score for e in found} == {expected[case]}, (case, expected[case])
    return Counter({case: len(found) for case, found in closed.items()})
