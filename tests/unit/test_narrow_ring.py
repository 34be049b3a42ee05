"""A model declaring incremental scoring runs on a ring cut to the batch's longest case: the
records are the whole ring's, to the byte, under every policy."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
import pytest

from casewatch.events import StreamingEvent
from casewatch.offline.export import build_model
from casewatch.offline.logs import interleave, read_log
from casewatch.offline.ngram import fit_ngram
from casewatch.offline.train import split
from casewatch.scoring.contract import METADATA_KEY
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.incremental import narrow_ring
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer

SHARED = Path(__file__).parents[3] / "shared" / "data" / "eventlogs"
CASES = 200
encode = msgspec.json.Encoder().encode


class WidthScorer(Scorer):
    """The real scorer, remembering the ring width of every scoring and explaining run."""

    widths: list[int]
    explained: list[int]

    def run(self, features: Features, batch_size: int) -> ScoreBatch:
        self.widths.append(int(features["sequence"].shape[1]))
        return super().run(features, batch_size)

    def explain(self, features: Features, rows: Any) -> Any:
        self.explained.append(int(features["sequence"].shape[1]))
        return super().explain(features, rows)


def _scorer(model: Path, contract: Path | None = None) -> WidthScorer:
    scorer = WidthScorer(model, contract_path=contract)
    scorer.widths, scorer.explained = [], []
    return scorer


def _exported(log: Path, tmp_path: Path) -> tuple[Path, Path, list[Any]]:
    """The log's model (declaring incremental scoring), a contract without the declaration, and
    held-out cases."""
    training, held_out = split(read_log(log), 0.5)
    model = build_model(
        fit_ngram(training), name="narrow", version="0", sequence_length=32,
        threshold=3.0, threshold_method="mode",
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    props = {p.key: p.value for p in model.metadata_props}
    contract = json.loads(props[METADATA_KEY])
    assert contract.pop("incremental")["window"] < 32
    undeclared = tmp_path / "whole-ring.json"
    undeclared.write_text(json.dumps(contract))
    return path, undeclared, held_out[:CASES]


def _records(scorer: Scorer, events: Sequence[StreamingEvent], **kwargs: Any) -> list[bytes]:
    evaluator = StreamingEvaluator(scorer, clock=lambda: 1.0, **kwargs)
    out: list[bytes] = []
    for start in range(0, len(events), 300):
        out += [encode(e) for e in evaluator.on_events(events[start : start + 300])]
    return out


@pytest.mark.parametrize("log", ["small-0.3-1.csv.gz", "p2p-0.3-2.csv.gz", "wide-0.3-2.csv.gz"])
@pytest.mark.parametrize(
    "policy",
    [
        {"score_on_every_event": False},
        {"score_on_every_event": True, "incremental": False},
        {"score_on_every_event": True, "incremental": True},
    ],
    ids=["close", "every-event", "incremental"],
)
def test_narrowed_records_are_the_whole_rings(
    log: str, policy: dict[str, bool], tmp_path: Path
) -> None:
    if not (SHARED / log).exists():
        pytest.skip(f"{log} is not in ../shared")
    model, undeclared, traces = _exported(SHARED / log, tmp_path)
    events = list(interleave(traces, open_cases=64, close_marker=True))
    whole = _scorer(model, undeclared)
    expected = _records(whole, events, **{**policy, "incremental": False})
    assert set(whole.widths) == {32}
    narrowed = _scorer(model)
    got = _records(narrowed, events, **policy)
    assert min(narrowed.widths) < 32  # some batch ran narrowed
    assert narrowed.explained and min(narrowed.explained) < 32
    assert b'"anomalous":true' in b"".join(got)  # explanations were compared too
    assert got == expected


def test_a_batch_with_a_case_longer_than_the_ring_runs_the_whole_ring(tiny_model: Path) -> None:
    scorer = _scorer(tiny_model)
    ring = scorer.contract.sequence_length
    long_case = [StreamingEvent("long", "A", attributes={"user": "ann"})] * (ring + 3)
    short_case = [StreamingEvent("short", "A", attributes={"user": "ann"})]
    StreamingEvaluator(scorer, score_on_every_event=True, incremental=False).on_events(
        long_case + short_case
    )
    assert scorer.widths[-1] == ring


def test_narrow_ring_cuts_only_ring_wide_features_and_keeps_the_window() -> None:
    features: Features = {
        "sequence": np.arange(2 * 32).reshape(2, 32),
        "event_attributes": np.zeros((2, 32, 3), np.int64),
        "n_events": np.ones((2, 1), np.float32),
    }
    cut = narrow_ring(features, longest=5, ring=32, window=3)
    assert cut["sequence"].shape == (2, 8) and cut["sequence"].flags.c_contiguous
    np.testing.assert_array_equal(cut["sequence"], features["sequence"][:, -8:])
    assert cut["event_attributes"].shape == (2, 8, 3)
    assert cut["n_events"] is features["n_events"]
    assert narrow_ring(features, longest=1, ring=32, window=6)["sequence"].shape == (2, 8)
    assert narrow_ring(features, longest=1, ring=32, window=3)["sequence"].shape == (2, 4)
    assert narrow_ring(features, longest=30, ring=32, window=3) is features
