"""Swapping the scorer under open cases, including a model with another activity set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from casewatch import Scorer, StreamingEvaluator, StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.offline.train import TrainOptions, train
from tests.unit.conftest import USERS, make_trace, normal_traces


def ev(case: str, name: str, offset: int = -1, *, close: bool = False) -> StreamingEvent:
    return StreamingEvent(
        case, name, attributes={"user": USERS.get(name, "zed")}, close=close, offset=offset
    )


@pytest.fixture(scope="module")
def wider_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Knows activity F besides A-E, keeps 4 events per case, version 2."""
    traces: list[Trace] = normal_traces(300) + [make_trace(f"f{i}", "ABDF") for i in range(50)]
    out = tmp_path_factory.mktemp("wider") / "wider.onnx"
    train(traces, out, TrainOptions(name="tiny", version="2", sequence_length=4), source="x")
    return out


def test_same_layout_swap_keeps_the_store(tiny_model: Path, tmp_path: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model)
    evaluator.on_events([ev("c", "A"), ev("c", "B")])
    store = evaluator.store
    assert not evaluator.swap_scorer(Scorer(tiny_model))
    assert evaluator.store is store


def test_open_cases_carry_over_to_another_activity_set(tiny_model: Path, wider_model: Path) -> None:
    events = [ev("c", n, i) for i, n in enumerate("ABCCB")] + [ev("d", "A", 9)]
    evaluator = StreamingEvaluator(tiny_model, track_changes=True)
    evaluator.on_events(events)
    evaluator.take_state_changes()
    assert evaluator.swap_scorer(Scorer(wider_model))
    assert evaluator.identity.version == "2"
    assert evaluator.open_cases() == ["c", "d"]
    # The carried-over case equals one that lived under the new model all along, ring cut to 4.
    fresh = StreamingEvaluator(wider_model)
    fresh.on_events(events)
    for column in ("counts", "unknown", "n_events", "last_offset"):
        np.testing.assert_array_equal(
            getattr(evaluator.store, column)[evaluator.store.index["c"]],
            getattr(fresh.store, column)[fresh.store.index["c"]],
        )
    closing = [ev("c", "E", 10, close=True)]
    assert evaluator.on_events(closing)[0].trace_score == fresh.on_events(closing)[0].trace_score
    # Every open case is rewritten to the changelog in the new layout.
    assert {c for c, _, _ in evaluator.take_state_changes().states} == {"d"}


def test_activities_the_new_model_lacks_become_unknown(wider_model: Path, tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(wider_model)
    evaluator.on_events([ev("c", "A"), ev("c", "F"), ev("c", "F")])
    evaluator.swap_scorer(Scorer(tiny_model))
    result = evaluator.score_case("c")
    assert result is not None
    assert result.unknown_activities == 2 and result.n_events == 3
