"""The alert rules on their own: streaks, resets, one opened alert per case, closed updates."""

from __future__ import annotations

import io
import json

import fastavro
import msgspec
import numpy as np
import pytest

from casewatch.events import ModelIdentity, Source, StreamingEvaluation, Trigger
from casewatch.kafka.registry import EVALUATION_AVRO, schema_text
from casewatch.scoring.alerts import AlertJudge, CaseAlert, alert_id
from casewatch.scoring.avro_alerts import alert_schema
from casewatch.state.columns import STREAK_MAX
from casewatch.state.store import CaseStore, StoreShape

MODEL = ModelIdentity("m", "1", "ab" * 32)


def evaluation(
    case_id: str, n_events: int, anomalous: bool, trigger: Trigger = "event"
) -> StreamingEvaluation:
    return StreamingEvaluation(
        f"{case_id}-{n_events}-{trigger}", case_id, n_events, 9.0 if anomalous else 0.5, 2.0,
        anomalous, {}, [], trigger == "close", trigger, None, None, 0.0, MODEL,
        Source("in", 0, n_events),
    )  # fmt: skip


class Judged:
    """Evaluations as the judge reads a scored batch: columns, and records on request."""

    def __init__(self, rows: np.ndarray, evaluations: list[StreamingEvaluation]) -> None:
        self.rows = rows
        self.evaluations = evaluations
        self.triggers: list[Trigger] = [e.trigger for e in evaluations]
        self.anomalous = np.array([e.anomalous for e in evaluations], dtype=np.bool_)
        self.asked: list[int] = []

    def __len__(self) -> int:
        return len(self.evaluations)

    def evaluations_at(self, positions: list[int]) -> list[StreamingEvaluation]:
        self.asked += positions
        return [self.evaluations[i] for i in positions]


class Case:
    """One case in a store, evaluated verdict by verdict ("A" anomalous, "n" normal)."""

    def __init__(self, alert_after: int | None, case_id: str = "c") -> None:
        self.store = CaseStore(StoreShape(activities=3, sequence_length=4))
        self.row = self.store.rows_for_events([case_id], [])[0]
        self.case_id = case_id
        self.alerts: list[CaseAlert] = []
        self.judge = AlertJudge(alert_after, self.alerts)
        self.n_events = 0

    def evaluate(self, verdicts: str, trigger: Trigger = "event") -> list[CaseAlert]:
        """One batch: an evaluation per verdict, the last one with ``trigger``."""
        evaluations = []
        for i, verdict in enumerate(verdicts):
            self.n_events += 1
            last = i == len(verdicts) - 1
            evaluations.append(
                evaluation(
                    self.case_id, self.n_events, verdict == "A", trigger if last else "event"
                )
            )
        rows = np.full(len(evaluations), self.row, dtype=np.int64)
        self.judged = Judged(rows, evaluations)
        self.judge.judge(self.store, self.judged)
        return self.alerts

    @property
    def state(self) -> tuple[int, bool]:
        return int(self.store.anomalous_streak[self.row]), bool(self.store.alerted[self.row])


def kinds(alerts: list[CaseAlert]) -> list[tuple[str, int, int]]:
    return [(a.kind, a.evaluation.n_events, a.consecutive_anomalous) for a in alerts]


def test_with_k_1_the_first_anomalous_evaluation_opens_the_alert_once() -> None:
    case = Case(1)
    for verdict in "nnAAnAA":
        case.evaluate(verdict)
    assert kinds(case.alerts) == [("opened", 3, 1)]
    assert case.state == (2, True)


def test_only_the_evaluations_that_raise_an_alert_are_made_as_records() -> None:
    case = Case(2)
    case.evaluate("nAAnA")
    assert case.judged.asked == [2]
    case.evaluate("AAA", trigger="close")
    assert case.judged.asked == [2]  # the closing evaluation updates the opened alert
    assert kinds(case.alerts) == [("opened", 3, 2), ("closed", 8, 4)]


def test_with_k_3_only_three_anomalous_evaluations_in_a_row_open_it() -> None:
    case = Case(3)
    for verdict in "AAnAAnA":
        case.evaluate(verdict)
    assert case.alerts == []
    assert case.state == (1, False)
    for verdict in "nAAAA":
        case.evaluate(verdict)
    assert kinds(case.alerts) == [("opened", 11, 3)]


def test_a_normal_evaluation_resets_the_streak() -> None:
    case = Case(3)
    case.evaluate("AA")
    assert case.state == (2, False)
    case.evaluate("n")
    assert case.state == (0, False)


def test_a_case_that_stays_normal_raises_nothing() -> None:
    case = Case(1)
    case.evaluate("nnnn")
    case.evaluate("n", "close")
    assert case.alerts == []
    assert case.state == (0, False)


def test_several_evaluations_of_a_case_in_one_batch_count_in_order() -> None:
    case = Case(2)
    case.evaluate("AnAAAn")
    assert kinds(case.alerts) == [("opened", 4, 2)]
    assert case.state == (0, True)


@pytest.mark.parametrize("trigger", ["close", "timeout", "evicted"])
def test_an_alerted_case_leaving_memory_gets_a_closed_update(trigger: Trigger) -> None:
    case = Case(1)
    case.evaluate("A")
    case.evaluate("n", trigger)
    assert kinds(case.alerts) == [("opened", 1, 1), ("closed", 2, 0)]
    closed = case.alerts[1]
    assert closed.evaluation.trigger == trigger
    assert not closed.evaluation.anomalous


def test_an_alert_opened_by_the_final_evaluation_is_one_record() -> None:
    # Always the case under the close policy: one evaluation per case.
    case = Case(1)
    case.evaluate("A", "close")
    assert kinds(case.alerts) == [("opened", 1, 1)]
    assert case.alerts[0].evaluation.closed


def test_a_case_that_leaves_before_reaching_k_raises_nothing() -> None:
    case = Case(3)
    case.evaluate("AA")
    case.evaluate("n", "timeout")
    assert case.alerts == []


def test_requested_evaluations_leave_the_alert_state_alone() -> None:
    case = Case(1)
    case.evaluate("A", "request")
    assert case.alerts == []
    assert case.state == (0, False)
    case = Case(2)
    case.evaluate("A")
    case.evaluate("n", "request")
    case.evaluate("A")
    assert kinds(case.alerts) == [("opened", 3, 2)]


def test_the_streak_saturates() -> None:
    case = Case(STREAK_MAX)
    case.evaluate("A" * (STREAK_MAX + 10))
    assert kinds(case.alerts) == [("opened", STREAK_MAX, STREAK_MAX)]
    assert case.state == (STREAK_MAX, True)


def test_alerts_off_leaves_the_store_untouched() -> None:
    case = Case(None)
    case.evaluate("AAAA", "close")
    assert case.alerts == []
    assert case.state == (0, False)


@pytest.mark.parametrize("alert_after", [0, STREAK_MAX + 1])
def test_an_alert_after_outside_the_streak_range_is_refused(alert_after: int) -> None:
    with pytest.raises(ValueError, match="alert_after"):
        AlertJudge(alert_after, [])


def test_the_alert_record_carries_the_whole_evaluation_and_a_stable_id() -> None:
    case = Case(1)
    case.evaluate("A")
    (alert,) = case.alerts
    record = msgspec.json.decode(msgspec.json.encode(alert))
    assert record["kind"] == "opened" and record["case_id"] == "c"
    assert record["alert_after"] == 1 and record["consecutive_anomalous"] == 1
    assert record["model"] == msgspec.to_builtins(MODEL)
    assert record["evaluation"] == msgspec.to_builtins(alert.evaluation)
    # Same evaluation, same id; the closed update of the same evaluation has another.
    assert alert.alert_id == alert_id("opened", alert.evaluation.evaluation_id)
    assert alert.alert_id != alert_id("closed", alert.evaluation.evaluation_id)
    again = Case(1)
    again.evaluate("A")
    assert again.alerts[0].alert_id == alert.alert_id
    assert msgspec.json.decode(msgspec.json.encode(alert), type=CaseAlert) == alert


def test_the_avro_alert_schema_wraps_the_evaluation_schema_and_covers_every_field() -> None:
    schema = json.loads(alert_schema())
    fields = {field["name"]: field["type"] for field in schema["fields"]}
    assert set(fields) == set(CaseAlert.__struct_fields__)
    # Whatever the evaluation schema gains, the alert's evaluation gains too.
    assert fields["evaluation"] == json.loads(schema_text(EVALUATION_AVRO))
    parsed = fastavro.parse_schema(schema)
    case = Case(1)
    case.evaluate("A")
    record = msgspec.to_builtins(case.alerts[0])
    written = io.BytesIO()
    fastavro.schemaless_writer(written, parsed, record)
    written.seek(0)
    assert fastavro.schemaless_reader(written, parsed) == record
