"""The drift window and its gauges: PSI against known values, the window sliding over final
evaluations and the events routed meanwhile, gauges left out without a baseline, and a reset
when a model is reloaded."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import structlog

from casewatch import StreamingEvaluation, StreamingEvaluator, StreamingEvent
from casewatch.daemon.model_reload import ModelFile, ModelReloader
from casewatch.events import ModelIdentity, Source
from casewatch.scoring.routing import RoutingCounts
from casewatch.scoring.training_summary import ScoreBins, TrainingSummary
from casewatch.telemetry.drift import DriftWindow, EventCounts, population_stability_index
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry
from casewatch.telemetry.verdicts import Verdicts
from tests.unit.conftest import USERS
from tests.unit.test_training_summary import without_summary


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(drift_window=4)
    yield telemetry
    telemetry.close()


def gauge(telemetry: Telemetry, name: str) -> float | None:
    return telemetry.registry.get_sample_value(f"casewatch_drift_{name}")


SUMMARY = TrainingSummary(
    cases=100,
    events=500,
    score_bins=ScoreBins(edges=[1.0], shares=[0.5, 0.5]),
    threshold=2.0,
    flagged_share=0.25,
    activity_counts={"A": 500},
)


def evaluation(score: float, trigger: str = "close", threshold: float = 2.0) -> StreamingEvaluation:
    return StreamingEvaluation(
        case_id="c",
        n_events=3,
        trace_score=score,
        threshold=threshold,
        anomalous=score > threshold,
        per_transition_residuals={},
        top_transitions=[],
        closed=trigger == "close",
        trigger=trigger,  # type: ignore[arg-type]
        first_event_at=None,
        last_event_at=None,
        evaluated_at=0.0,
        model=ModelIdentity("m", "1", "0" * 64),
        source=Source(None, -1, -1),
        unknown_activities=0,
        evaluation_id="e",
    )


# --- PSI ---------------------------------------------------------------------------------------


def test_psi_of_known_shares() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert population_stability_index(np.array([0.25, 0.75]), np.array([0.5, 0.5])) == (
        pytest.approx(expected)
    )
    same = np.full(10, 0.1)
    assert population_stability_index(same, same) == 0.0
    # An empty bin is floored, so the index is large but finite.
    empty = population_stability_index(np.array([0.0, 1.0]), np.array([0.5, 0.5]))
    assert empty == pytest.approx(0.4999 * math.log(0.5 / 1e-4) + 0.5 * math.log(1.0 / 0.5))


def test_window_psi_bins_scores_right_closed() -> None:
    window = DriftWindow(4)
    window.reset(np.array([1.0]))
    assert window.psi(np.array([0.5, 0.5])) is None  # empty
    window.add_cases(np.array([0.5, 1.0, 1.5, 3.0]), np.zeros(4, dtype=bool))
    # Two scores at or below the edge 1.0, two above: the training split exactly.
    assert window.psi(np.array([0.5, 0.5])) == 0.0
    assert window.psi(np.array([0.25, 0.75])) == pytest.approx(
        population_stability_index(np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    )
    no_bins = DriftWindow(4)
    no_bins.add_cases(np.array([1.0]), np.array([False]))
    assert no_bins.psi(np.array([1.0])) is None


def test_incremental_counts_match_the_window_recounted() -> None:
    rng = np.random.default_rng(3)
    edges = np.array([0.5, 1.0, 2.0, 4.0])
    expected = np.full(5, 0.2)
    window = DriftWindow(50)
    window.reset(edges)
    for size in rng.integers(0, 80, 40):
        scores = rng.exponential(1.5, size)
        flagged = scores > 3.0
        window.add_cases(scores, flagged)
        kept = window.scores()
        shares = np.bincount(np.searchsorted(edges, kept), minlength=5) / kept.size
        assert window.psi(expected) == pytest.approx(population_stability_index(shares, expected))
        assert window.flagged_share == pytest.approx(float(np.mean(kept > 3.0)))


# --- the window --------------------------------------------------------------------------------


def test_window_keeps_the_last_cases_as_it_slides() -> None:
    window = DriftWindow(3)
    window.add_cases(np.array([1.0, 2.0]), np.array([True, False]))
    assert window.fill == 2 and window.flagged_share == 0.5
    window.add_cases(np.array([3.0, 4.0]), np.array([False, False]))
    assert window.fill == 3
    assert sorted(window.scores().tolist()) == [2.0, 3.0, 4.0]
    assert window.flagged_share == 0.0
    # A batch larger than the window keeps its own last cases.
    window.add_cases(np.arange(10.0), np.arange(10) >= 8)
    assert sorted(window.scores().tolist()) == [7.0, 8.0, 9.0]
    assert window.flagged_share == pytest.approx(2 / 3)
    window.reset(None)
    assert window.fill == 0 and window.flagged_share is None and window.events == 0


def routed(events: int, unknown: int = 0, values: int = 0, unknown_values: int = 0) -> EventCounts:
    return EventCounts(0, events, unknown, values, unknown_values)


def test_event_rates_cover_the_batches_that_closed_the_windows_cases() -> None:
    window = DriftWindow(2)
    window.add_events(routed(10, unknown=5))  # nothing closed yet: counted at once
    assert window.unknown_activity_rate == 0.5 and window.unknown_value_rate is None
    window.add_cases(np.array([1.0]), np.array([False]))
    window.add_events(routed(10, values=10, unknown_values=1))
    assert window.events == 20 and window.unknown_activity_rate == 0.25
    window.add_cases(np.array([1.0]), np.array([False]))
    window.add_events(routed(10))
    assert window.events == 30
    # Two newer cases push out the first batch's events with its case.
    window.add_cases(np.array([1.0, 1.0]), np.array([False, False]))
    window.add_events(routed(10))
    assert window.events == 10 and window.unknown_activity_rate == 0.0
    assert window.unknown_value_rate is None


# --- the gauges --------------------------------------------------------------------------------


def test_gauges_without_a_baseline_leave_its_metrics_out(telemetry: Telemetry) -> None:
    counts = RoutingCounts()
    drift = telemetry.drift
    drift.bind(counts)
    with structlog.testing.capture_logs() as logs:
        drift.use_model(None, "bare")
    assert [e["event"] for e in logs] == ["drift_baseline_missing"]
    assert "casewatch_drift_score_psi" in logs[0]["absent"]
    counts.events, counts.unknown_activities = 8, 2
    drift.observe(Verdicts.of([evaluation(3.0), evaluation(0.5, trigger="event")]))
    assert gauge(telemetry, "window_cases") == 1
    assert gauge(telemetry, "flagged_share") == 1.0
    assert gauge(telemetry, "unknown_activity_rate") == 0.25
    assert gauge(telemetry, "window_events") == 8
    for name in ("score_psi", "expected_flagged_share", "unknown_value_rate"):
        assert gauge(telemetry, name) is None, name


def test_gauges_with_a_baseline_and_a_reset_on_reload(telemetry: Telemetry) -> None:
    drift = telemetry.drift
    drift.bind(RoutingCounts())
    drift.use_model(SUMMARY, "m")
    assert gauge(telemetry, "window_cases") == 0
    assert gauge(telemetry, "score_psi") is None
    assert gauge(telemetry, "expected_flagged_share") == 0.25
    drift.observe(
        Verdicts.of([evaluation(s, trigger="timeout") for s in (0.5, 0.7, 3.0, 4.0, 5.0)])
    )
    assert gauge(telemetry, "window_cases") == 4  # the window holds 4
    assert gauge(telemetry, "score_psi") == pytest.approx(
        population_stability_index(np.array([0.25, 0.75]), np.array([0.5, 0.5]))
    )
    drift.use_model(SUMMARY, "m")
    assert gauge(telemetry, "window_cases") == 0 and gauge(telemetry, "flagged_share") is None


def test_loop_metrics_feed_the_window_from_the_evaluators_router(
    telemetry: Telemetry, tiny_model: Path
) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    telemetry.drift.bind(evaluator.routing_counts)
    telemetry.drift.use_model(evaluator.scorer.training_summary, "tiny")
    metrics = LoopMetrics(telemetry, evaluator, SimpleNamespace(failed=0, oversized=0, rerouted=0))
    events = [StreamingEvent("k1", name, attributes={"user": USERS[name]}) for name in "ABC"]
    events += [StreamingEvent("k1", "E", attributes={"user": USERS["E"]}, close=True)]
    events += [StreamingEvent("k2", "Z", attributes={"user": "zed"})]
    events += [StreamingEvent("k2", "E", attributes={"user": "eve"}, close=True)]
    scored = evaluator.on_events_batch(events)
    assert scored is not None
    metrics.evaluations(scored.verdicts(), time.time())
    metrics.batch(len(events), time.perf_counter())
    assert gauge(telemetry, "window_cases") == 2
    assert gauge(telemetry, "unknown_activity_rate") == pytest.approx(1 / 6)
    assert gauge(telemetry, "unknown_value_rate") == pytest.approx(1 / 6)
    assert gauge(telemetry, "score_psi") is not None


def test_a_model_reload_starts_the_window_again(
    telemetry: Telemetry, tiny_model: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live.onnx"
    live.write_bytes(tiny_model.read_bytes())
    evaluator = StreamingEvaluator(live)
    telemetry.drift.bind(evaluator.routing_counts)
    telemetry.drift.use_model(evaluator.scorer.training_summary, "tiny")
    reloader = ModelReloader(ModelFile(live), evaluator, telemetry, watch_interval=None)
    closed = [StreamingEvent(f"c{i}", "A", close=True) for i in range(3)]
    telemetry.drift.observe(Verdicts.of(evaluator.on_events(closed)))
    assert gauge(telemetry, "window_cases") == 3
    # The same file again is no new model: the window stays.
    reloader.request()
    assert not reloader.maybe_reload()
    assert gauge(telemetry, "window_cases") == 3
    without_summary(tiny_model, live)
    reloader.request()
    with structlog.testing.capture_logs() as logs:
        assert reloader.maybe_reload()
    assert gauge(telemetry, "window_cases") == 0
    assert gauge(telemetry, "expected_flagged_share") is None
    assert "drift_baseline_missing" in [e["event"] for e in logs]
    # Events routed before the reload are not counted again afterwards.
    telemetry.drift.observe(None)
    assert gauge(telemetry, "window_events") == 0
