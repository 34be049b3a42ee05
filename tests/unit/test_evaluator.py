from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from casewatch import StreamingEvaluation, StreamingEvaluator, StreamingEvent
from casewatch.errors import ModelError
from tests.failing_model import failing_copy
from tests.unit.conftest import USERS


def ev(case: str, name: str, **kwargs: object) -> StreamingEvent:
    return StreamingEvent(case, name, attributes={"user": USERS.get(name, "zed")}, **kwargs)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def strip_time(e: StreamingEvaluation) -> dict[str, object]:
    record = msgspec.to_builtins(e)
    record.pop("evaluated_at")
    return record


def test_normal_case_scores_below_threshold_and_anomaly_above(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    for name in "ABCE":
        evaluator.on_event(ev("ok", name))
    for name in "ACBE":
        evaluator.on_event(ev("bad", name))
    normal = evaluator.close_case("ok")
    anomalous = evaluator.close_case("bad")
    assert normal is not None and anomalous is not None
    assert not normal.anomalous
    assert anomalous.anomalous and anomalous.trace_score > normal.trace_score
    assert anomalous.closed and anomalous.trigger == "close"


def test_wrong_user_for_activity_is_flagged_on_that_activity(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    for name in "ABC":
        evaluator.on_event(ev("c", name))
    evaluator.on_event(StreamingEvent("c", "E", attributes={"user": "ann"}))
    result = evaluator.close_case("c")
    assert result is not None and result.anomalous
    assert result.top_transitions[0].transition == "E"


def test_close_frees_state_and_next_event_starts_fresh(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    evaluator.on_event(ev("c", "A"))
    evaluator.on_event(ev("c", "B"))
    closed = evaluator.close_case("c")
    assert closed is not None and closed.n_events == 2
    assert evaluator.open_cases() == []
    assert evaluator.close_case("c") is None
    evaluator.on_event(ev("c", "A"))
    again = evaluator.score_case("c")
    assert again is not None and again.n_events == 1


def test_score_case_keeps_state_and_unknown_case_is_none(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    assert evaluator.score_case("nope") is None
    evaluator.on_event(ev("c", "A"))
    first = evaluator.score_case("c")
    second = evaluator.score_case("c")
    assert first is not None and second is not None
    assert first.trigger == "request" and not first.closed
    assert evaluator.open_cases() == ["c"]


def test_every_event_scores_equal_close_scores_for_the_same_prefix(tiny_model: Path) -> None:
    every = StreamingEvaluator(tiny_model, score_on_every_event=True)
    per_event = list(every.process_stream(ev("c", n) for n in "ABDCE"))
    assert [e.n_events for e in per_event] == [1, 2, 3, 4, 5]
    for length, evaluation in enumerate(per_event, start=1):
        closing = StreamingEvaluator(tiny_model)
        for name in "ABDCE"[:length]:
            assert closing.on_event(ev("c", name)) is None
        prefix = closing.score_case("c")
        assert prefix is not None
        assert prefix.trace_score == evaluation.trace_score
        assert prefix.per_transition_residuals == evaluation.per_transition_residuals
    # The closing event's evaluation in every-event mode is the close evaluation itself.
    last_every = StreamingEvaluator(tiny_model, score_on_every_event=True)
    last_close = StreamingEvaluator(tiny_model)
    stream = [ev("c", n) for n in "ABCE"[:-1]] + [ev("c", "E", close=True)]
    every_final = list(last_every.process_stream(stream))[-1]
    close_final = list(last_close.process_stream(stream))[-1]
    assert every_final.trigger == close_final.trigger == "close"
    assert every_final.trace_score == close_final.trace_score


def interleaved_stream() -> list[StreamingEvent]:
    events = []
    for step, names in enumerate(zip("ABCE", "ABDE", "ACBE", "AXBE", strict=True)):
        for case, name in enumerate(names):
            events.append(
                ev(f"c{case}", name, close=step == 3, partition=case % 2, offset=step * 4 + case)
            )
    # a case id reused after its close, inside the same batch as the close
    events += [ev("c0", "A", offset=100), ev("c0", "B", offset=101), ev("c0", "B", offset=102)]
    return events


@pytest.mark.parametrize("every", [False, True])
def test_batch_results_equal_one_at_a_time(tiny_model: Path, every: bool) -> None:
    clock = Clock()
    events = interleaved_stream()
    batched = StreamingEvaluator(tiny_model, score_on_every_event=every, clock=clock)
    single = StreamingEvaluator(tiny_model, score_on_every_event=every, clock=clock)
    batch_results = batched.on_events(events, source_topic="t")
    one_by_one = [r for e in events for r in single.on_events([e], source_topic="t")]
    assert [strip_time(r) for r in batch_results] == [strip_time(r) for r in one_by_one]
    assert batched.open_cases() == single.open_cases() == ["c0"]
    expected = len(events) if every else 4
    assert len(batch_results) == expected


def test_unknown_activity_is_counted_not_fatal(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    evaluator.on_event(ev("c", "A"))
    evaluator.on_event(ev("c", "never seen"))
    result = evaluator.close_case("c")
    assert result is not None
    assert result.unknown_activities == 1 and evaluator.unknown_activity_events == 1
    assert result.anomalous


def test_evaluation_id_is_deterministic(tiny_model: Path) -> None:
    def run() -> list[str]:
        evaluator = StreamingEvaluator(tiny_model, score_on_every_event=True)
        return [e.evaluation_id for e in evaluator.on_events(interleaved_stream())]

    first, second = run(), run()
    assert first == second
    assert len(set(first)) == len(first)


def test_end_activity_closes_the_case(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, end_activities={"E"})
    results = evaluator.on_events([ev("c", n) for n in "ABCE"])
    assert [r.trigger for r in results] == ["close"]
    assert evaluator.open_cases() == []


def test_idle_cases_expire_with_a_final_evaluation(tiny_model: Path) -> None:
    clock = Clock()
    evaluator = StreamingEvaluator(tiny_model, idle_ttl=60, clock=clock)
    evaluator.on_events([ev("old", "A"), ev("old", "B")])
    clock.now += 50
    evaluator.on_events([ev("young", "A")])
    clock.now += 20
    assert evaluator.expire() == []  # no event since: the stream has not moved on
    expired = evaluator.expire(now=clock.now)
    assert [(e.case_id, e.trigger, e.closed, e.n_events) for e in expired] == [
        ("old", "timeout", False, 2)
    ]
    assert evaluator.open_cases() == ["young"]


def test_open_case_bound_evicts_least_recently_seen(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, max_open_cases=2)
    evaluator.on_events([ev("a", "A"), ev("b", "A")])
    evaluator.on_events([ev("a", "B")])
    results = evaluator.on_events([ev("c", "A")])
    assert [(r.case_id, r.trigger) for r in results] == [("b", "evicted")]
    assert evaluator.open_cases() == ["a", "c"]


def test_drop_partitions_forgets_their_cases(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    evaluator.on_events([ev("p0", "A", partition=0), ev("p1", "A", partition=1)])
    assert evaluator.drop_partitions({1}) == 1
    assert evaluator.open_cases() == ["p0"]


def test_long_case_is_judged_on_its_ring(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    names = "AB" + "C" * 40 + "E"
    results = evaluator.on_events([ev("c", n) for n in names[:-1]] + [ev("c", "E", close=True)])
    assert results[0].n_events == len(names)
    assert np.isfinite(results[0].trace_score)


@pytest.fixture(scope="module")
def failing_at_five(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Passes check-model; fails inside onnxruntime for any case of five or more events."""
    return failing_copy(tiny_model, tmp_path_factory.mktemp("fail") / "five.onnx", at_events=5)


@pytest.fixture(scope="module")
def failing_always(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return failing_copy(tiny_model, tmp_path_factory.mktemp("fail") / "always.onnx", at_events=0)


def closed_cases(names: dict[str, str]) -> list[StreamingEvent]:
    events = []
    for case_id, activities in names.items():
        for i, name in enumerate(activities):
            events.append(ev(case_id, name, close=i == len(activities) - 1, offset=len(events)))
    return events


def test_a_model_failing_on_one_case_fails_only_that_case(
    failing_at_five: Path, tiny_model: Path
) -> None:
    cases = {"a": "ABCE", "long": "ABCCCE", "b": "ABDE", "c": "ABCE", "long2": "ABCCCCE"}
    evaluator = StreamingEvaluator(failing_at_five, isolate_scoring_failures=True)
    evaluations = evaluator.on_events(closed_cases(cases), source_topic="in")
    reference = StreamingEvaluator(tiny_model).on_events(closed_cases(cases), source_topic="in")

    assert [e.case_id for e in evaluations] == ["a", "b", "c"]
    expected = {e.case_id: e.trace_score for e in reference}
    assert {e.case_id: e.trace_score for e in evaluations} == {c: expected[c] for c in "abc"}
    failures = evaluator.scoring_failures
    assert [f.case_id for f in failures] == ["long", "long2"]
    first = failures[0]
    assert first.n_events == 6 and first.trigger == "close" and first.closed
    assert first.model == evaluator.identity and first.source.topic == "in"
    assert (first.first_offset, first.source.offset) == (4, 9)  # its first and last event
    assert "Gather" in first.error and "\n" not in first.error
    # A closed case leaves memory with its error record, like any closed case.
    assert evaluator.open_case_count == 0


def test_cases_scored_around_a_failing_one_keep_their_explanations(
    failing_at_five: Path, tiny_model: Path
) -> None:
    cases = {"odd": "ACE", "long": "ABCCCE", "fine": "ABDE", "odd2": "ADE"}
    evaluator = StreamingEvaluator(failing_at_five, isolate_scoring_failures=True)
    evaluations = evaluator.on_events(closed_cases(cases), source_topic="in")
    reference = StreamingEvaluator(tiny_model).on_events(closed_cases(cases), source_topic="in")
    expected = {e.case_id: e.explanation for e in reference}
    assert [f.case_id for f in evaluator.scoring_failures] == ["long"]
    assert {e.case_id: e.explanation for e in evaluations} == {
        c: expected[c] for c in ("odd", "fine", "odd2")
    }
    assert expected["odd"] and expected["fine"] is None


def test_a_failing_case_scored_on_every_event_stays_open(failing_at_five: Path) -> None:
    evaluator = StreamingEvaluator(
        failing_at_five, score_on_every_event=True, isolate_scoring_failures=True
    )
    for name in "ABCCC":
        evaluator.on_events([ev("long", name)])
    evaluator.on_events([ev("short", "A")])
    assert [(f.case_id, f.n_events) for f in evaluator.scoring_failures] == [("long", 5)]
    assert sorted(evaluator.open_cases()) == ["long", "short"]
    evaluator.scoring_failures.clear()
    (closed,) = evaluator.on_events([ev("short", "B", close=True)])
    assert closed.case_id == "short" and closed.n_events == 2


def test_expired_and_evicted_cases_the_model_fails_on_get_error_records(
    failing_at_five: Path,
) -> None:
    clock = Clock()
    evaluator = StreamingEvaluator(
        failing_at_five, idle_ttl=10, max_open_cases=2, clock=clock,
        isolate_scoring_failures=True,
    )  # fmt: skip
    evaluator.on_events([ev("long", n) for n in "ABCCC"] + [ev("x", "A"), ev("y", "A")])
    assert [(f.case_id, f.trigger) for f in evaluator.scoring_failures] == [("long", "evicted")]
    evaluator.scoring_failures.clear()
    evaluator.on_events([ev("z", n) for n in "ABCCC"])
    clock.now += 60
    expired = evaluator.expire(now=clock.now)
    assert {e.case_id for e in expired} == {"y"}
    assert [(f.case_id, f.trigger) for f in evaluator.scoring_failures] == [("z", "timeout")]


def test_a_model_failing_on_every_case_stops_with_one_line(failing_always: Path) -> None:
    evaluator = StreamingEvaluator(failing_always, isolate_scoring_failures=True)

    def batches() -> None:
        for batch in range(20):
            evaluator.on_events([ev(f"c{batch}-{i}", "A", close=True) for i in range(3)])

    with pytest.raises(ModelError) as caught:
        batches()
    message = str(caught.value)
    assert "every case" in message and "\n" not in message
    assert len(evaluator.scoring_failures) >= 10


def test_without_isolation_a_scoring_failure_raises(failing_at_five: Path) -> None:
    evaluator = StreamingEvaluator(failing_at_five)
    with pytest.raises(ModelError, match="scoring failed"):
        evaluator.on_events(closed_cases({"long": "ABCCCE"}))


def test_the_happy_path_runs_the_model_once_per_batch(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluator = StreamingEvaluator(tiny_model, isolate_scoring_failures=True)
    calls: list[int] = []
    run = evaluator.scorer.run

    def counting(features: Any, batch_size: int) -> Any:
        calls.append(batch_size)
        return run(features, batch_size)

    monkeypatch.setattr(evaluator.scorer, "run", counting)
    evaluations = evaluator.on_events(closed_cases({"a": "ABCE", "b": "ABDE", "c": "ABCCE"}))
    assert len(evaluations) == 3 and calls == [3]
    assert evaluator.scoring_failures == []
