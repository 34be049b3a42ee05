"""The daemon's columnar path writes the records, alerts and metric columns of the record path."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from casewatch import StreamingEvaluation, StreamingEvaluator, StreamingEvent
from casewatch.scoring.scored import ScoredBatch
from casewatch.telemetry.verdicts import Verdicts

ENCODE = msgspec.json.Encoder().encode


def twin(model: Path, **options: object) -> StreamingEvaluator:
    return StreamingEvaluator(
        model,
        clock=lambda: 1_800_000_000.5,
        alert_after=2,
        **options,  # type: ignore[arg-type]
    )


def stream() -> list[list[StreamingEvent]]:
    """Batches where one case has several events (several generations), some close, one runs
    off script (anomalous), and the open case bound evicts."""
    t = 1_700_000_000.0
    first = [StreamingEvent("a", n, t + i, {"user": "ann"}, offset=i) for i, n in enumerate("ABC")]
    first += [StreamingEvent("b", "A", t, offset=3), StreamingEvent("x", "E", t, offset=4)]
    first += [StreamingEvent("x", "C", t + 1, offset=5), StreamingEvent("b", "B", t + 1, offset=6)]
    first += [StreamingEvent("d", "A", t + 2, offset=7)]
    second = [StreamingEvent("a", "E", t + 5, close=True, offset=7)]
    second += [StreamingEvent(f"c{i}", "A", offset=8 + i) for i in range(4)]
    second += [StreamingEvent("x", "Z", t + 2, {"user": "zed"}, offset=12)]
    second += [StreamingEvent("x", "E", t + 3, close=True, offset=13)]
    return [first, second]


def columns_and_records(
    model: Path, **options: object
) -> tuple[list[ScoredBatch], list[list[StreamingEvaluation]]]:
    columnar, records = twin(model, **options), twin(model, **options)
    batches: list[ScoredBatch] = []
    evaluations: list[list[StreamingEvaluation]] = []
    for events in stream():
        scored = columnar.on_events_batch(events, source_topic="in")
        assert scored is not None
        batches.append(scored)
        evaluations.append(records.on_events(events, source_topic="in"))
    assert columnar.case_alerts == records.case_alerts
    return batches, evaluations


@pytest.mark.parametrize("every_event", [True, False])
def test_encoded_batches_are_the_records_bytes(tiny_model: Path, every_event: bool) -> None:
    batches, evaluations = columns_and_records(
        tiny_model, score_on_every_event=every_event, max_open_cases=3
    )
    for scored, records in zip(batches, evaluations, strict=True):
        assert scored.encoded() == [ENCODE(e) for e in records]
        assert scored.keys() == [e.case_id.encode() for e in records]
        assert scored.evaluations() == records


def test_verdicts_are_the_records_columns(tiny_model: Path) -> None:
    batches, evaluations = columns_and_records(
        tiny_model, score_on_every_event=True, max_open_cases=3
    )
    assert any(e.anomalous for batch in evaluations for e in batch)
    for scored, records in zip(batches, evaluations, strict=True):
        ours, theirs = scored.verdicts(), Verdicts.of(records)
        assert theirs is not None
        assert ours.model == theirs.model and ours.threshold == theirs.threshold
        assert ours.triggers == theirs.triggers and ours.blamed == theirs.blamed
        for name in ("trace_scores", "anomalous", "last_event_at"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), name)
    joined = Verdicts.concat([b.verdicts() for b in batches])
    assert joined is not None
    assert joined.triggers == [e.trigger for batch in evaluations for e in batch]


def test_taken_rows_keep_their_records_and_explanations(tiny_model: Path) -> None:
    (scored, *_), (records, *_) = columns_and_records(tiny_model, score_on_every_event=True)
    assert any(e.explanation for e in records)  # the tiny model explains its anomalies
    order = np.arange(len(scored))[::-1].copy()
    assert scored.take(order).evaluations() == records[::-1]
    picked = [*[i for i, e in enumerate(records) if e.explanation][:1], 0]
    assert scored.evaluations_at(picked) == [records[i] for i in picked]


def test_nothing_due_is_no_batch(tiny_model: Path) -> None:
    evaluator = twin(tiny_model)
    assert evaluator.on_events_batch([]) is None
    assert evaluator.on_events_batch([StreamingEvent("a", "A")]) is None
    assert evaluator.expire_batch() is None
