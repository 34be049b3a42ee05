"""The daemon's anomalous evaluations name their blamed events on the output topic, as the
offline evaluator does for the same cases; normal ones carry a null explanation."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from casewatch.events import StreamingEvaluation
from casewatch.offline.replay import replay
from casewatch.scoring.scorer import Scorer
from tests.integration.daemon_harness import (
    DaemonProcess,
    bundled_traces,
    case_events,
    produce_events,
    read_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CASES = 400


def test_published_records_carry_the_blames_the_offline_evaluator_gives(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    events = case_events(CASES)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, model_path, tmp_path, explanation_top_k=1
    ).start()
    try:
        daemon.wait_ready()
        produce_events(kafka_bootstrap, topics["input"], events)
        records = read_records(kafka_bootstrap, topics["output"], until=CASES)
    finally:
        daemon.kill()
    published = {r["case_id"]: r for r in (json.loads(x.value or b"") for x in records)}
    assert len(published) == CASES

    offline: dict[str, StreamingEvaluation] = {}
    replay(
        bundled_traces()[:CASES], Scorer(model_path), sink=lambda e: offline.update({e.case_id: e})
    )
    anomalous = [r for r in published.values() if r["anomalous"]]
    assert len(anomalous) >= 20
    for record in published.values():
        expected = offline[record["case_id"]].explanation
        if not record["anomalous"]:
            assert "explanation" in record and record["explanation"] is None
            continue
        (blame,) = record["explanation"]  # top_k = 1 from the setting
        assert expected is not None
        assert blame == msgspec.to_builtins(expected[0])
        assert blame["reason"].endswith(f"({blame['expected_probability']:.2f})")
        assert 1 <= blame["position"] <= record["n_events"] + 1
