"""Explaining a flagged case: which event is blamed and what the scorer expected in its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from casewatch.events import StreamingEvaluation
from casewatch.offline.explain import explain, pick_flagged
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.replay import replay
from casewatch.scoring.scorer import Scorer
from tests.conftest import BUNDLED_LOG
from tests.unit.conftest import make_trace


def _finals(traces: list[Trace], scorer: Scorer) -> dict[str, StreamingEvaluation]:
    finals: dict[str, StreamingEvaluation] = {}

    def keep(evaluation: StreamingEvaluation) -> None:
        if evaluation.closed:
            finals[evaluation.case_id] = evaluation

    replay(traces, scorer, sink=keep)
    return finals


def test_a_skipped_activity_is_blamed_on_the_event_after_the_gap(tiny_model: Path) -> None:
    scorer = Scorer(tiny_model)
    trace = make_trace("skip", "ACE", label=True)
    case = explain(trace, _finals([trace], scorer)["skip"], scorer)
    assert case.anomalous
    assert case.blamed_position == 1
    assert case.blamed_activity == "C"
    assert [e.blamed for e in case.events] == [False, True, False]
    assert case.expected is not None
    assert case.expected.activity == "B"
    assert case.expected.residual < case.blamed_residual
    assert case.events[1].attributes == {"user": "cid"}


def test_a_normal_case_keeps_its_events_and_the_expected_activity_is_its_own(
    tiny_model: Path,
) -> None:
    scorer = Scorer(tiny_model)
    trace = make_trace("ok", "ABCE")
    case = explain(trace, _finals([trace], scorer)["ok"], scorer)
    assert not case.anomalous
    assert [e.activity for e in case.events] == list("ABCE")
    if case.blamed_position is not None and case.expected is not None:
        assert case.expected.activity == case.events[case.blamed_position].activity


@pytest.fixture(scope="module")
def bundled() -> list[Trace]:
    return [t for t in read_log(BUNDLED_LOG) if t.events]


def test_a_repeated_activity_is_blamed_on_the_occurrence_that_deviates(
    bundled: list[Trace], model_path: Path
) -> None:
    scorer = Scorer(model_path)
    reworked = next(
        t for t in bundled if t.anomaly_type == "Rework" and len(t.anomalous_positions) == 2
    )
    case = explain(reworked, _finals([reworked], scorer)[reworked.case_id], scorer)
    repeated = reworked.events[reworked.anomalous_positions[0]].name
    first = next(i for i, e in enumerate(reworked.events) if e.name == repeated)
    assert case.blamed_position in reworked.anomalous_positions
    assert case.blamed_position != first
    assert case.expected is not None
    assert case.expected.activity != repeated


def test_picked_cases_are_flagged_and_cover_the_anomaly_types_first(
    bundled: list[Trace], model_path: Path
) -> None:
    scorer = Scorer(model_path)
    sample = bundled[2500:3000]
    finals = _finals(sample, scorer)
    picked = pick_flagged(sample, finals, 4)
    assert len(picked) == 4
    assert all(finals[t.case_id].anomalous for t in picked)
    assert len({t.anomaly_type for t in picked}) == 4
    assert pick_flagged(sample, finals, 0) == []
