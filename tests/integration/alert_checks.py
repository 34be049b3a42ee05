"""What the alert topic must hold for a stream of cases, worked out from the verdicts alone.

The expectation is derived from each case's sequence of verdicts (one evaluation per event,
scored offline by the same model), not from the alert code: the first evaluation at which k
anomalous verdicts in a row are reached opens the case's alert; a case that alerted before its
last evaluation gets a closed update carrying that last one.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import msgspec

from casewatch import StreamingEvaluator
from casewatch.events import StreamingEvent
from casewatch.scoring.alerts import CaseAlert
from tests.integration.daemon_harness import Record

# (case_id, kind, n_events of the evaluation the alert carries)
AlertKey = tuple[str, str, int]


def verdicts(model: Path, events: list[StreamingEvent]) -> dict[str, list[bool]]:
    """Each case's anomalous flags, event by event, from one offline pass."""
    evaluator = StreamingEvaluator(model, score_on_every_event=True)
    flags: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(events), 500):
        for evaluation in evaluator.on_events(events[start : start + 500]):
            flags[evaluation.case_id].append(evaluation.anomalous)
    return dict(flags)


def expected_alerts(flags: dict[str, list[bool]], alert_after: int) -> set[AlertKey]:
    expected: set[AlertKey] = set()
    for case_id, case_flags in flags.items():
        streak = 0
        for n_events, anomalous in enumerate(case_flags, start=1):
            streak = streak + 1 if anomalous else 0
            if streak == alert_after:
                expected.add((case_id, "opened", n_events))
                if n_events < len(case_flags):
                    expected.add((case_id, "closed", len(case_flags)))
                break
    return expected


def flapping(flags: list[bool]) -> bool:
    """Crosses the threshold up, down and up again."""
    changes = sum(1 for a, b in pairwise(flags) if a != b)
    return changes >= 3 or (changes >= 2 and flags[0])


def decode_alerts(records: list[Record]) -> list[CaseAlert]:
    decoder = msgspec.json.Decoder(CaseAlert)
    alerts = []
    for record in records:
        assert record.value is not None
        alert = decoder.decode(record.value)
        assert record.key == alert.case_id.encode()
        alerts.append(alert)
    return alerts


def keys(alerts: list[CaseAlert]) -> list[AlertKey]:
    return [(a.case_id, a.kind, a.evaluation.n_events) for a in alerts]
