"""A running daemon's threshold, blamed-activity, process and GC series, against its outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from casewatch import StreamingEvaluator
from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    evaluations,
    http_get,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def samples(page: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    ]


def test_threshold_and_blamed_activities_match_the_published_evaluations(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(300)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(kafka_bootstrap, topics, model_path, tmp_path).start()
    try:
        base = daemon.wait_ready()
        before = samples(http_get(base + "/metrics")[1])
        produce_events(kafka_bootstrap, topics["input"], events)
        published = evaluations(
            read_records(kafka_bootstrap, topics["output"], until=len(cases), grace=1.0)
        )
        status, page = http_get(base + "/metrics")
    finally:
        daemon.kill()

    assert status == 200
    after = samples(page)
    # The threshold is there from start-up, and it is the one the evaluations were judged by.
    model = published[0].model
    expected = [({"model": model.name, "version": model.version}, published[0].threshold)]
    for page_samples in (before, after):
        thresholds = [
            (lbl, value) for name, lbl, value in page_samples if name == "casewatch_threshold"
        ]
        assert thresholds == expected

    flagged = [e for e in published if e.anomalous]
    assert flagged and len(published) == len(cases)
    blamed = Counter(e.top_transitions[0].transition for e in flagged if e.top_transitions)
    counted = {
        labels["activity"]: value
        for name, labels, value in after
        if name == "casewatch_anomalies_total" and value
    }
    unblamed = len(flagged) - blamed.total()
    assert counted == {**blamed, **({"other": unblamed} if unblamed else {})}
    assert set(counted) <= set(StreamingEvaluator(model_path).scorer.activities) | {"other"}

    names = {name for name, _, _ in after}
    assert {
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "python_info",
        "python_gc_collections_total",
    } <= names
    assert not [name for name in names if name.endswith("_created")]
