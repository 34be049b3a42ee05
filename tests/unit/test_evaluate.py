from __future__ import annotations

import math
from pathlib import Path

import pytest

from casewatch import Scorer
from casewatch.events import StreamingEvent
from casewatch.offline.evaluate import evaluate, report_lines
from casewatch.offline.logs import Trace
from tests.unit.conftest import make_trace, normal_traces


def anomalous(case_id: str, activities: str, kind: str, blamed: tuple[int, ...]) -> Trace:
    trace = make_trace(case_id, activities, label=True)
    return Trace(case_id, trace.events, True, kind, blamed)


def with_attribute(case_id: str, position: int) -> Trace:
    trace = make_trace(case_id, "ABCE", label=True)
    events = list(trace.events)
    odd = events[position]
    events[position] = StreamingEvent(case_id, odd.name, odd.timestamp, {"user": "mallory"})
    return Trace(case_id, events, True, "Attribute", (position,))


def tiny_log() -> list[Trace]:
    return [
        *normal_traces(20, seed=3),
        anomalous("insert", "ABDBCE", "Insert", (3,)),  # B after D: the process never goes back
        anomalous("skip", "ACE", "SkipSequence", (1,)),  # C straight after A: B was skipped
        with_attribute("attribute", 2),
        anomalous("unknown", "ABCE", "Late", ()),  # blamed events unknown, and looks normal
    ]


def test_per_type_recall_localisation_and_delay(tiny_model: Path) -> None:
    result = evaluate(tiny_log(), Scorer(tiny_model), policy="every-event")
    assert result.recall_by_type == {
        "Attribute": 1.0,
        "Insert": 1.0,
        "Late": 0.0,
        "SkipSequence": 1.0,
    }
    assert result.quality.precision == 1.0 and result.quality.recall == pytest.approx(0.75)
    # The top residual is the odd event's activity: B (insert), C (skip and attribute).
    assert (result.localised, result.localisable) == (3, 3)
    # Every anomaly is flagged by the evaluation of its own blamed event.
    assert sorted(result.delays) == [0, 0, 0]
    lines = "\n".join(report_lines(result, "every-event"))
    assert "median 0.0" in lines and "localisation 1.000" in lines


def test_close_policy_reports_no_delay(tiny_model: Path) -> None:
    result = evaluate(tiny_log(), Scorer(tiny_model), policy="close")
    assert result.delays == [] and math.isnan(result.delay_quantile(0.5))
    assert result.recall_by_type["Insert"] == 1.0
    assert "needs --policy every-event" in "\n".join(report_lines(result, "close"))


def test_unlabelled_log_is_refused(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="label"):
        evaluate([make_trace("x", "ABCE", label=None)], Scorer(tiny_model))
