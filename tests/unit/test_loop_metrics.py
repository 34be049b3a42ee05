"""Running totals the loop hands over become counter increments, each counted once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from casewatch import StreamingEvaluation, StreamingEvaluator, StreamingEvent
from casewatch.daemon.decode import INVALID_REASONS
from casewatch.errors import DeliveryFailure
from casewatch.events import ModelIdentity, Source, TransitionResidual
from casewatch.kafka.producer import OutputProducer
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry
from casewatch.telemetry.model_series import MAX_ACTIVITY_LABELS
from casewatch.telemetry.verdicts import Verdicts
from tests.unit.conftest import USERS


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


def sample(telemetry: Telemetry, name: str) -> float:
    return telemetry.registry.get_sample_value(name) or 0.0


def test_delivery_errors_are_counted_once_each(telemetry: Telemetry) -> None:
    outputs = SimpleNamespace(failed=0, oversized=0, rerouted=0)
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    metrics = LoopMetrics(telemetry, evaluator, outputs)

    outputs.failed = 2
    metrics.batch(10, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 2
    metrics.batch(10, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 2

    outputs.failed = 3
    metrics.checkpoint(changelog_records=0, pending_outputs=0)
    assert sample(telemetry, "casewatch_delivery_errors_total") == 3


def test_a_record_the_broker_never_takes_is_a_delivery_error(telemetry: Telemetry) -> None:
    # Nothing listens on port 1: librdkafka gives up on the record after message.timeout.ms and
    # reports it through the delivery callback, as it does for any record a broker fails to take.
    outputs = OutputProducer(
        {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 200, "log_level": 0},
        max_pending=10,
        dead_letter_topic="dlq",
    )
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    metrics = LoopMetrics(telemetry, evaluator, outputs)
    outputs.produce("out", b"case-1", b"{}")
    with pytest.raises(DeliveryFailure, match="out"):
        outputs.flush(10.0)
    metrics.batch(1, time.perf_counter())
    assert sample(telemetry, "casewatch_delivery_errors_total") == 1
    assert sample(telemetry, "casewatch_oversized_records_total") == 0


# --- threshold and blamed activities ---------------------------------------------------------


def ev(case: str, name: str) -> StreamingEvent:
    return StreamingEvent(case, name, attributes={"user": USERS.get(name, "zed")})


def scored(model: Path, cases: dict[str, str]) -> list[StreamingEvaluation]:
    evaluator = StreamingEvaluator(model)
    for case, names in cases.items():
        for name in names:
            evaluator.on_event(ev(case, name))
    return [evaluator.close_case(case) for case in cases]


def evaluation(
    blamed: list[str], *, anomalous: bool = True, version: str = "1", threshold: float = 2.0
) -> StreamingEvaluation:
    return StreamingEvaluation(
        evaluation_id="e",
        case_id="c",
        n_events=3,
        trace_score=threshold + (1 if anomalous else -1),
        threshold=threshold,
        anomalous=anomalous,
        per_transition_residuals=dict.fromkeys(blamed, 1.0),
        top_transitions=[TransitionResidual(a, 1.0) for a in blamed],
        closed=True,
        trigger="close",
        first_event_at=None,
        last_event_at=None,
        evaluated_at=0.0,
        model=ModelIdentity("m", version, f"sha-{version}"),
        source=Source("in", 0, 0),
    )


def anomalies(telemetry: Telemetry) -> dict[str, float]:
    return {
        sample.labels["activity"]: sample.value
        for family in telemetry.registry.collect()
        if family.name == "casewatch_anomalies"
        for sample in family.samples
    }


def loop_metrics(telemetry: Telemetry) -> LoopMetrics:
    outputs = SimpleNamespace(failed=0, oversized=0, rerouted=0)
    evaluator = SimpleNamespace(open_case_count=0, unknown_activity_events=0)
    return LoopMetrics(telemetry, evaluator, outputs)


def test_anomalies_are_counted_by_their_top_blamed_activity(
    telemetry: Telemetry, tiny_model: Path
) -> None:
    metrics = loop_metrics(telemetry)
    published = scored(tiny_model, {"ok": "ABCE", "bad": "ACBE", "worse": "AECB", "ok2": "ABCE"})
    metrics.evaluations(Verdicts.of(published), time.time())
    flagged = [e for e in published if e.anomalous]
    assert flagged and len(flagged) < len(published)
    expected = Counter(e.top_transitions[0].transition for e in flagged)
    counted = anomalies(telemetry)
    assert {a: n for a, n in counted.items() if n} == expected
    # Every anomalous evaluation lands in exactly one activity series.
    flagged_total = telemetry.registry.get_sample_value(
        "casewatch_evaluations_total", {"trigger": "close", "anomalous": "true"}
    )
    assert sum(counted.values()) == flagged_total == len(flagged)
    assert set(counted) <= set(StreamingEvaluator(tiny_model).scorer.activities) | {"other"}


def test_an_anomaly_with_no_blamed_transition_counts_as_other(telemetry: Telemetry) -> None:
    metrics = loop_metrics(telemetry)
    metrics.evaluations(
        Verdicts.of([evaluation([]), evaluation(["B"]), evaluation(["B"], anomalous=False)]), 0
    )
    assert anomalies(telemetry) == {"other": 1, "B": 1}


def test_activity_labels_are_capped(telemetry: Telemetry) -> None:
    metrics = loop_metrics(telemetry)
    names = [f"activity {i}" for i in range(MAX_ACTIVITY_LABELS + 50)]
    metrics.evaluations(Verdicts.of([evaluation([name]) for name in names]), 0)
    counted = anomalies(telemetry)
    assert len(counted) == MAX_ACTIVITY_LABELS + 1
    assert sum(counted.values()) == len(names)
    assert counted["other"] == len(names) - MAX_ACTIVITY_LABELS


def test_the_threshold_follows_the_model_of_the_published_evaluations(
    telemetry: Telemetry,
) -> None:
    metrics = loop_metrics(telemetry)
    assert (
        telemetry.registry.get_sample_value("casewatch_threshold", {"model": "m", "version": "1"})
        is None
    )
    metrics.evaluations(Verdicts.of([evaluation(["A"], threshold=2.5)]), 0)
    assert (
        telemetry.registry.get_sample_value("casewatch_threshold", {"model": "m", "version": "1"})
        == 2.5
    )
    metrics.evaluations(Verdicts.of([evaluation(["A"], version="2", threshold=3.25)]), 0)
    thresholds = [
        (s.labels, s.value)
        for family in telemetry.registry.collect()
        if family.name == "casewatch_threshold"
        for s in family.samples
    ]
    assert thresholds == [({"model": "m", "version": "2"}, 3.25)]
