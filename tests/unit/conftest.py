from __future__ import annotations

import random
from pathlib import Path

import pytest

from casewatch.events import StreamingEvent
from casewatch.offline.logs import Trace
from casewatch.offline.train import TrainOptions, train

USERS = {"A": "ann", "B": "bob", "C": "cid", "D": "dan", "E": "eve", "F": "fay"}


def make_trace(case_id: str, activities: str, *, label: bool | None = False) -> Trace:
    events = [
        StreamingEvent(
            case_id, name, timestamp=1_700_000_000.0 + i, attributes={"user": USERS[name]}
        )
        for i, name in enumerate(activities)
    ]
    return Trace(case_id, events, label, None, ())


def normal_traces(count: int, seed: int = 7) -> list[Trace]:
    rng = random.Random(seed)
    return [make_trace(f"n{i}", rng.choice(["ABCE", "ABDE", "ABCCE"])) for i in range(count)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny.onnx"
    train(
        normal_traces(300),
        out,
        TrainOptions(name="tiny", version="1", sequence_length=8),
        source="tiny",
    )
    return out
