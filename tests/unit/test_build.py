"""The daemon is wired in one place, from the settings; nothing else below the CLI reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from casewatch.daemon.build import build_daemon, load_evaluator, loop_options, model_file
from casewatch.daemon.decode import INVALID_REASONS
from casewatch.settings import Settings
from casewatch.telemetry.metrics import Telemetry

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "casewatch"
# The settings themselves, the wiring, and the commands that load them.
READERS = ("settings.py", "_settings_endpoints.py", "daemon/build.py", "cli/")


def test_only_the_wiring_and_the_commands_read_the_settings() -> None:
    mentions = {
        relative
        for path in PACKAGE.rglob("*.py")
        if not (relative := str(path.relative_to(PACKAGE))).startswith(READERS)
        and re.search(r"\bSettings\b", path.read_text(encoding="utf-8"))
    }
    assert mentions == set()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(
        bootstrap_servers="127.0.0.1:1",
        input_topic="orders",
        dlq_topic="orders-dlq",
        group_id="live",
        max_batch_wait_ms=250,
        commit_interval_seconds=3,
        max_pending_outputs=500,
        startup_timeout_seconds=1.5,
        model_watch_interval_seconds=0,
        intra_op_threads=2,
    )


def test_the_settings_reach_the_parts_as_plain_values(settings: Settings) -> None:
    options = loop_options(settings)
    assert (options.input_topic, options.dead_letter_topic) == ("orders", "orders-dlq")
    assert options.changelog_topic == "live--orders--changelog"
    assert (options.max_batch_wait, options.exactly_once) == (0.25, False)
    assert options.consumer_config["group.id"] == "live"
    model = model_file(settings)
    assert (model.path, model.intra_op_threads) == (settings.model_path, 2)


def test_a_built_daemon_shares_one_stop_request_and_one_restore_view(settings: Settings) -> None:
    daemon = build_daemon(
        settings, load_evaluator(settings), Telemetry(invalid_reasons=INVALID_REASONS)
    )
    assert daemon.outputs.max_pending == 500
    assert daemon.outputs.dead_letter_topic == "orders-dlq"
    assert (daemon.checkpoint.topic, daemon.checkpoint.interval) == ("orders", 3)
    daemon.restorer.begin([2])
    assert daemon.back_pressure._held() == {2}
    daemon.restorer.cancel({2})
    # A stop requested before the broker answers ends start-up, and the run, cleanly.
    daemon.request_stop()
    with capture_logs() as logs:
        daemon.run()
    assert logs[-1]["event"] == "daemon_stopped"


def test_incremental_scoring_can_be_turned_off(settings: Settings) -> None:
    every_event = settings.model_copy(update={"score_policy": "every-event"})
    assert load_evaluator(every_event)._bound.incremental is not None
    whole_ring = every_event.model_copy(update={"incremental_scoring": False})
    assert load_evaluator(whole_ring)._bound.incremental is None
    from_text = Settings(
        _env_file=None, **{**every_event.model_dump(), "incremental_scoring": "false"}
    )
    assert from_text.incremental_scoring is False
