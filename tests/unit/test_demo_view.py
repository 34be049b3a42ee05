"""How the demo prints a flagged case."""

from __future__ import annotations

import dataclasses

from casewatch.cli.demo_view import case_lines
from casewatch.offline.explain import CaseExplanation, Expectation, ExplainedEvent


def _case(expected: Expectation | None, blamed: int = 1) -> CaseExplanation:
    names = ["Create SC", "Post GR", "Pay"]
    return CaseExplanation(
        case_id="c[1]",
        score=4.5,
        threshold=2.25,
        anomalous=True,
        events=[ExplainedEvent(n, {"user": "ann"}, i == blamed) for i, n in enumerate(names)],
        blamed_position=blamed,
        blamed_activity=names[blamed],
        blamed_residual=4.5,
        expected=expected,
        label=True,
        anomaly_type="Early",
    )


def test_the_blamed_event_is_marked_with_what_was_expected() -> None:
    lines = case_lines(_case(Expectation("Purchase SC", 0.25)))
    assert lines[0].startswith("[bold]case c[1][/bold]  score 4.50 against threshold 2.25 (2.0x)")
    assert "labelled Early" in lines[0]
    assert len(lines) == 4
    assert lines[2].startswith("[bold red] ►   2  Post GR    user ann[/bold red]")
    assert lines[2].endswith("residual 4.50; expected Purchase SC (residual 0.25)")
    assert not any("►" in line for line in (lines[1], lines[3]))


def test_an_expected_activity_points_at_its_attributes_and_a_missing_end_says_so() -> None:
    same = case_lines(_case(Expectation("Post GR", 0.0)))[2]
    assert same.endswith("the activity is expected here, its user is not")
    ended = case_lines(_case(Expectation(None, 0.0)))[2]
    assert ended.endswith("expected the case to end before it (residual 0.00)")
    unknown = case_lines(_case(None))[2]
    assert unknown.endswith("residual 4.50")


def test_a_flagged_normal_case_is_called_a_false_alarm() -> None:
    case = dataclasses.replace(_case(None), label=False, anomaly_type=None)
    assert case_lines(case)[0].endswith("; labelled normal: a false alarm by the labels")
    unlabelled = dataclasses.replace(case, label=None)
    assert case_lines(unlabelled)[0].endswith("(2.0x)")
