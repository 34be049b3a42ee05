"""Hot reload: a new model takes over between batches, with no event lost; a bad one is refused."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import onnx
import pytest

from casewatch.scoring.contract import METADATA_KEY
from tests.integration.daemon_harness import (
    DaemonProcess,
    case_events,
    evaluations,
    outputs_after_catch_up,
    produce_events,
    read_records,
    wait_for_outputs,
)
from tests.integration.state_checks import assert_like_an_uninterrupted_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def relabelled(model: Path, version: str, target: Path) -> None:
    """The same scorer under another version (so another sha256), written atomically."""
    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            contract = json.loads(prop.value)
            contract["version"] = version
            prop.value = json.dumps(contract)
    staging = target.with_suffix(".tmp")
    onnx.save(proto, str(staging))
    os.replace(staging, target)


def test_model_file_change_swaps_models_mid_stream_without_losing_events(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live.onnx"
    relabelled(model_path, "A", live)
    events = case_events(600)
    cases = {e.case_id for e in events}
    daemon = DaemonProcess(
        kafka_bootstrap, topics, live, tmp_path, model_watch_interval_seconds=0.2
    ).start()
    producer = threading.Thread(
        target=produce_events, args=(kafka_bootstrap, topics["input"], events, 1500)
    )
    try:
        daemon.wait_ready(60)
        producer.start()
        wait_for_outputs(kafka_bootstrap, topics, 0.4 * len(cases), daemon)
        relabelled(model_path, "B", live)
        producer.join()
        published = outputs_after_catch_up(kafka_bootstrap, topics, daemon)
        loaded = [e for e in daemon.log_events() if e.get("event") == "model_loaded"]
    finally:
        producer.join()
        daemon.kill()

    assert [(e["previous_version"], e["version"]) for e in loaded] == [("A", "B")]
    assert_like_an_uninterrupted_run(events, published, model_path)
    versions = [e.model.version for e in sorted(published, key=lambda e: e.evaluated_at)]
    switch = versions.index("B")
    assert switch > 0 and set(versions[:switch]) == {"A"} and set(versions[switch:]) == {"B"}


def test_sighup_reloads_and_an_invalid_model_is_refused(
    kafka_bootstrap: str, topics: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live.onnx"
    relabelled(model_path, "A", live)
    daemon = DaemonProcess(
        kafka_bootstrap, topics, live, tmp_path, model_watch_interval_seconds=0
    ).start()
    try:
        daemon.wait_ready(60)
        live.write_bytes(b"not a model")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "casewatch_model_load_failures_total 1.0" not in daemon.metrics_text():
            assert time.monotonic() < deadline, daemon.log_text()
            time.sleep(0.1)
        events = case_events(20)
        produce_events(kafka_bootstrap, topics["input"], events)
        kept = evaluations(read_records(kafka_bootstrap, topics["output"], until=20))
        relabelled(model_path, "B", live)
        daemon.process.send_signal(signal.SIGHUP)
        # The swap happens between batches: wait for it before sending the next events.
        while not any(e.get("event") == "model_loaded" for e in daemon.log_events()):
            assert time.monotonic() < deadline + 20, daemon.log_text()
            time.sleep(0.1)
        first_cases = {e.case_id for e in events}
        more = [e for e in case_events(40) if e.case_id not in first_cases]
        produce_events(kafka_bootstrap, topics["input"], more)
        published = evaluations(read_records(kafka_bootstrap, topics["output"], until=40))
        metrics = daemon.metrics_text()
    finally:
        daemon.kill()
    assert {e.model.version for e in kept} == {"A"}
    assert {e.model.version for e in published if e.case_id in {m.case_id for m in more}} == {"B"}
    assert 'version="B"' in metrics
    assert any(e.get("event") == "model_reload_failed" for e in daemon.log_events())
