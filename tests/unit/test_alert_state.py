"""Alert state in the evaluator: raised from real scores, kept with the case through leaving,
restarts (the changelog) and model reloads (carry-over to another layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from casewatch import Scorer, StreamingEvaluator, StreamingEvent
from casewatch.offline.train import TrainOptions, train
from casewatch.scoring.alerts import CaseAlert
from tests.shifted_model import offsets_for, shifted_copy
from tests.unit.conftest import USERS, make_trace, normal_traces

# With the tiny model every prefix of these is normal, and of these anomalous from event 2 on.
NORMAL, ANOMALOUS = "ABCE", "ACBE"


def ev(case: str, name: str, offset: int = -1, *, close: bool = False) -> StreamingEvent:
    user = USERS.get(name, "zed")
    return StreamingEvent(case, name, 1.7e9 + offset, {"user": user}, close=close, offset=offset)


def case(case_id: str, activities: str, *, close: bool = True) -> list[StreamingEvent]:
    last = len(activities) - 1
    return [ev(case_id, a, i, close=close and i == last) for i, a in enumerate(activities)]


def summary(alerts: list[CaseAlert]) -> list[tuple[str, str, int, str]]:
    return [(a.case_id, a.kind, a.evaluation.n_events, a.evaluation.trigger) for a in alerts]


@pytest.fixture(scope="module")
def flapping_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, judging every case anomalous at 2, 4 and 5 events."""
    out = tmp_path_factory.mktemp("flapping") / "flapping.onnx"
    return shifted_copy(tiny_model, out, offsets_for({2, 4, 5}, 6))


@pytest.fixture(scope="module")
def wider_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Knows activity F besides A-E and keeps 4 events per case: another state layout."""
    traces = normal_traces(300) + [make_trace(f"f{i}", "ABDF") for i in range(50)]
    out = tmp_path_factory.mktemp("wider") / "wider.onnx"
    train(traces, out, TrainOptions(name="tiny", version="2", sequence_length=4), source="x")
    return out


def test_every_event_scoring_alerts_each_anomalous_case_once(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, score_on_every_event=True, alert_after=1)
    # Interleaved, one event per batch, as a stream delivers them.
    for pair in zip(case("ok", NORMAL), case("bad", ANOMALOUS), strict=True):
        evaluator.on_events(list(pair))
    assert summary(evaluator.case_alerts) == [
        ("bad", "opened", 2, "event"),
        ("bad", "closed", 4, "close"),
    ]
    assert evaluator.case_alerts[0].consecutive_anomalous == 1


def test_a_flapping_case_alerts_once_with_k_1_and_when_k_is_reached_with_k_2(
    flapping_model: Path,
) -> None:
    for alert_after, opened_at in ((1, 2), (2, 5)):
        evaluator = StreamingEvaluator(
            flapping_model, score_on_every_event=True, alert_after=alert_after
        )
        # Verdicts by length: normal, anomalous, normal, anomalous, anomalous, normal.
        evaluator.on_events(case("c", "ABCCCE"))
        assert summary(evaluator.case_alerts) == [
            ("c", "opened", opened_at, "event"),
            ("c", "closed", 6, "close"),
        ]


def test_alerts_come_in_the_order_of_the_evaluations(flapping_model: Path) -> None:
    evaluator = StreamingEvaluator(flapping_model, score_on_every_event=True, alert_after=1)
    events = [ev("x", "A", 0), ev("y", "A", 1), ev("y", "B", 2), ev("x", "B", 3)]
    evaluations = evaluator.on_events(events)
    assert [e.case_id for e in evaluations if e.anomalous] == ["y", "x"]
    assert summary(evaluator.case_alerts) == [
        ("y", "opened", 2, "event"),
        ("x", "opened", 2, "event"),
    ]


def test_an_evicted_alerted_case_gets_its_closed_update(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(
        tiny_model, score_on_every_event=True, alert_after=1, max_open_cases=1
    )
    evaluator.on_events(case("bad", "ACB", close=False))
    evaluator.on_events([ev("next", "A", 9)])
    assert summary(evaluator.case_alerts) == [
        ("bad", "opened", 2, "event"),
        ("bad", "closed", 3, "evicted"),
    ]


def test_a_timed_out_alerted_case_gets_its_closed_update(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(
        tiny_model, score_on_every_event=True, alert_after=1, idle_ttl=60, clock=lambda: 1000.0
    )
    evaluator.on_events(case("bad", "ACB", close=False))
    assert evaluator.expire(now=5000.0)
    assert summary(evaluator.case_alerts)[-1] == ("bad", "closed", 3, "timeout")


def test_a_requested_evaluation_changes_nothing(flapping_model: Path) -> None:
    evaluator = StreamingEvaluator(flapping_model, score_on_every_event=True, alert_after=1)
    evaluator.on_events([ev("c", "A", 0)])
    evaluator.on_events([ev("c", "B", 1)])  # anomalous at 2 events: opened
    requested = evaluator.score_case("c")
    assert requested is not None and requested.anomalous
    assert summary(evaluator.case_alerts) == [("c", "opened", 2, "event")]


def test_a_restored_case_neither_forgets_nor_repeats_its_alert(tiny_model: Path) -> None:
    before = StreamingEvaluator(
        tiny_model, score_on_every_event=True, alert_after=1, track_changes=True
    )
    events = case("bad", ANOMALOUS)
    before.on_events(events[:2])
    assert summary(before.case_alerts) == [("bad", "opened", 2, "event")]
    ((case_id, _, state),) = before.take_state_changes().states
    after = StreamingEvaluator(tiny_model, score_on_every_event=True, alert_after=1)
    after.restore_case(case_id, state)
    after.on_events(events[2:])
    assert summary(after.case_alerts) == [("bad", "closed", 4, "close")]


def test_a_streak_survives_a_restart(flapping_model: Path) -> None:
    before = StreamingEvaluator(
        flapping_model, score_on_every_event=True, alert_after=2, track_changes=True
    )
    events = case("c", "ABCCCE")
    before.on_events(events[:4])  # verdicts n A n A: a streak of one
    ((case_id, _, state),) = before.take_state_changes().states
    after = StreamingEvaluator(flapping_model, score_on_every_event=True, alert_after=2)
    after.restore_case(case_id, state)
    after.on_events(events[4:5])
    assert summary(before.case_alerts + after.case_alerts) == [("c", "opened", 5, "event")]


def test_a_model_reload_to_another_layout_keeps_the_alert_state(
    tiny_model: Path, wider_model: Path
) -> None:
    evaluator = StreamingEvaluator(
        tiny_model, score_on_every_event=True, alert_after=1, track_changes=True
    )
    events = case("bad", ANOMALOUS)
    evaluator.on_events(events[:2])
    assert evaluator.swap_scorer(Scorer(wider_model))
    row = evaluator.store.index["bad"]
    assert (int(evaluator.store.anomalous_streak[row]), bool(evaluator.store.alerted[row])) == (
        1,
        True,
    )
    evaluator.on_events(events[2:])
    kinds = [kind for _, kind, _, _ in summary(evaluator.case_alerts)]
    assert kinds == ["opened", "closed"]


def test_without_alert_after_nothing_is_collected(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, score_on_every_event=True)
    evaluator.on_events(case("bad", ANOMALOUS))
    assert evaluator.case_alerts == []


def test_close_case_sends_the_closed_update_and_leaves_a_clean_row(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, score_on_every_event=True, alert_after=1)
    evaluator.on_events(case("bad", "ACB", close=False))
    closed = evaluator.close_case("bad")
    assert closed is not None and closed.trigger == "close"
    assert summary(evaluator.case_alerts) == [
        ("bad", "opened", 2, "event"),
        ("bad", "closed", 3, "close"),
    ]
    # The next case takes the released row: it starts with no streak and no alert.
    evaluator.on_events([ev("next", "A", 9)])
    row = evaluator.store.index["next"]
    assert (int(evaluator.store.anomalous_streak[row]), bool(evaluator.store.alerted[row])) == (
        0,
        False,
    )
