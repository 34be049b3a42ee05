"""Explaining a flagged case: which event is blamed and what the scorer expected in its place."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from rich.markup import escape

from casewatch.cli.demo_view import case_lines
from casewatch.events import StreamingEvaluation
from casewatch.offline.explain import explain, pick_flagged, reason
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.replay import replay
from casewatch.scoring.contract import METADATA_KEY
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


def _without_explanations(model: Path, target: Path) -> Path:
    loaded = onnx.load(str(model))
    entry = next(p for p in loaded.metadata_props if p.key == METADATA_KEY)
    contract = json.loads(entry.value)
    contract.pop("explanation")
    entry.value = json.dumps(contract)
    onnx.save(loaded, str(target))
    return target


def test_a_model_that_explains_itself_is_read_as_the_record_says(tiny_model: Path) -> None:
    scorer = Scorer(tiny_model)
    trace = make_trace("skip", "ACE", label=True)
    final = _finals([trace], scorer)["skip"]
    case = explain(trace, final, scorer)
    assert final.explanation
    assert case.blame == final.explanation[0]
    assert (
        reason(case)
        == final.explanation[0].reason
        == "C after A; expected B " + (f"({final.explanation[0].expected_probability:.2f})")
    )
    assert case.expected is not None and case.expected.probability is not None
    (blamed,) = (line for line in case_lines(case) if "►" in line)
    assert blamed.endswith(escape(final.explanation[0].reason))


def test_without_explanation_outputs_the_scorer_is_asked_and_residuals_are_shown(
    tiny_model: Path, tmp_path: Path
) -> None:
    scorer = Scorer(_without_explanations(tiny_model, tmp_path / "plain.onnx"))
    trace = make_trace("skip", "ACE", label=True)
    final = _finals([trace], scorer)["skip"]
    case = explain(trace, final, scorer)
    assert final.explanation is None and case.blame is None
    assert case.blamed_position == 1
    assert case.expected is not None and case.expected.activity == "B"
    assert reason(case).startswith(f"residual {case.blamed_residual:.2f}; expected B (residual")
