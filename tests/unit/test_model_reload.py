"""Hot reload of the model: a valid new model takes over between batches with the open cases,
an invalid one is refused and the old one keeps scoring; SIGHUP or a changed file trigger it."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
import structlog

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.daemon.decode import INVALID_REASONS
from casewatch.daemon.model_reload import ModelFile, ModelReloader
from casewatch.offline.train import TrainOptions, train
from casewatch.telemetry.metrics import Telemetry
from tests.unit.conftest import USERS, normal_traces


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def newer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("newer") / "tiny-2.onnx"
    options = TrainOptions(name="tiny", version="2", sequence_length=8)
    train(normal_traces(300, seed=11), out, options, source="tiny")
    return out


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry(invalid_reasons=INVALID_REASONS)
    yield telemetry
    telemetry.close()


class Setup:
    """A deployed model file, an evaluator scoring with it, and its reloader."""

    def __init__(
        self,
        model: Path,
        directory: Path,
        telemetry: Telemetry,
        *,
        watch_interval: float | None = None,
    ) -> None:
        self.path = directory / "model.onnx"
        shutil.copyfile(model, self.path)
        self.telemetry = telemetry
        self.clock = Clock()
        self.evaluator = StreamingEvaluator(self.path)
        self.reloader = ModelReloader(
            ModelFile(self.path, intra_op_threads=1),
            self.evaluator,
            telemetry,
            watch_interval=watch_interval,
            clock=self.clock,
        )

    def deploy(self, model: Path) -> None:
        """Replace the file atomically, as operators are told to."""
        staged = self.path.with_suffix(".new")
        shutil.copyfile(model, staged)
        os.replace(staged, self.path)

    def deploy_bytes(self, content: bytes) -> None:
        staged = self.path.with_suffix(".new")
        staged.write_bytes(content)
        os.replace(staged, self.path)

    def load_failures(self) -> float:
        value = self.telemetry.registry.get_sample_value("casewatch_model_load_failures_total")
        return value or 0.0

    def version(self) -> str:
        return self.evaluator.identity.version


def event(case_id: str, name: str, *, close: bool = False) -> StreamingEvent:
    return StreamingEvent(case_id, name, attributes={"user": USERS[name]}, close=close)


def test_a_requested_reload_swaps_in_a_valid_model_with_the_open_cases(
    tiny_model: Path, newer_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry)
    s.evaluator.on_events([event("a", "A"), event("a", "B"), event("b", "A")])
    s.deploy(newer_model)
    assert s.version() == "1"  # nothing changes until the batch boundary
    s.reloader.request()
    with structlog.testing.capture_logs() as logs:
        assert s.reloader.maybe_reload()
    assert s.version() == "2"
    assert s.evaluator.open_case_count == 2
    (closing,) = s.evaluator.on_events([event("a", "C"), event("a", "E", close=True)])
    assert closing.n_events == 4  # the two events before the swap are kept
    assert closing.model.version == "2"
    assert [entry["event"] for entry in logs] == ["model_loaded"]
    assert logs[0]["previous_version"] == "1"
    info = telemetry.registry.get_sample_value(
        "casewatch_model_info", {"name": "tiny", "version": "2", "sha256": closing.model.sha256}
    )
    assert info == 1.0


def test_an_invalid_model_is_refused_and_the_old_one_keeps_running(
    tiny_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry)
    s.evaluator.on_events([event("a", "A")])
    s.deploy_bytes(b"not an onnx model")
    s.reloader.request()
    with structlog.testing.capture_logs() as logs:
        assert not s.reloader.maybe_reload()
    assert s.version() == "1"
    assert s.load_failures() == 1.0
    (failure,) = [entry for entry in logs if entry["event"] == "model_reload_failed"]
    assert failure["log_level"] == "error" and failure["kept"] == "1"
    (evaluation,) = s.evaluator.on_events([event("a", "B"), event("a", "E", close=True)])
    assert evaluation.model.version == "1" and evaluation.n_events == 3


def test_the_same_model_again_changes_nothing(
    tiny_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry)
    s.deploy(tiny_model)
    s.reloader.request()
    with structlog.testing.capture_logs() as logs:
        assert not s.reloader.maybe_reload()
    assert logs == []
    assert s.load_failures() == 0.0


def test_nothing_is_reloaded_unless_asked_or_watched(
    tiny_model: Path, newer_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry, watch_interval=None)
    s.deploy(newer_model)
    s.clock.now += 3600
    assert not s.reloader.maybe_reload()
    assert s.version() == "1"


def test_a_changed_file_is_picked_up_on_the_watch_interval(
    tiny_model: Path, newer_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry, watch_interval=10.0)
    s.deploy(newer_model)
    s.clock.now += 9.0
    assert not s.reloader.maybe_reload()  # not looked at before the interval
    assert s.version() == "1"
    s.clock.now += 1.0
    assert s.reloader.maybe_reload()
    assert s.version() == "2"
    s.clock.now += 10.0
    assert not s.reloader.maybe_reload()  # unchanged since


def test_an_invalid_file_is_tried_once_until_it_changes(
    tiny_model: Path, newer_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry, watch_interval=10.0)
    s.deploy_bytes(b"half a model")
    s.clock.now += 10.0
    assert not s.reloader.maybe_reload()
    s.clock.now += 10.0
    assert not s.reloader.maybe_reload()
    assert s.load_failures() == 1.0  # one failure per bad file, not one per interval
    s.deploy(newer_model)
    s.clock.now += 10.0
    assert s.reloader.maybe_reload()
    assert s.version() == "2"


def test_sighup_requests_a_reload_at_the_next_batch_boundary(
    tiny_model: Path, newer_model: Path, tmp_path: Path, telemetry: Telemetry
) -> None:
    s = Setup(tiny_model, tmp_path, telemetry)
    s.deploy(newer_model)

    def request_reload(signum: int, frame: FrameType | None) -> None:
        s.reloader.request()

    previous = signal.signal(signal.SIGHUP, request_reload)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert s.version() == "1"  # the handler only asks
    assert s.reloader.maybe_reload()
    assert s.version() == "2"
    assert not s.reloader.maybe_reload()  # one request, one reload
