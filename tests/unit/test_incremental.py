"""Incremental scoring gives the whole ring's scores and records for cases within the ring."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from casewatch.errors import ContractError
from casewatch.events import StreamingEvaluation, StreamingEvent
from casewatch.offline.export import build_model
from casewatch.offline.logs import interleave, read_log
from casewatch.offline.ngram import fit_ngram
from casewatch.offline.train import split
from casewatch.scoring.blame import Blamer
from casewatch.scoring.contract import METADATA_KEY
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.incremental import RunningState, occurrences
from casewatch.scoring.scorer import Features, ScoreBatch, Scorer
from tests.failing_model import failing_copy
from tests.score_term import with_score_term

REPO = Path(__file__).parents[2]
SHARED = REPO.parent / "shared" / "data" / "eventlogs"
BUNDLED_MODEL = REPO / "models" / "reference.onnx"
CASES = 200
encode = msgspec.json.Encoder().encode


class CountingScorer(Scorer):
    """The real scorer, remembering the ring width of every run."""

    widths: list[int]

    def run(self, features: Features, batch_size: int) -> ScoreBatch:
        self.widths.append(int(features["sequence"].shape[1]))
        return super().run(features, batch_size)


def _exported(log: Path, out: Path, sequence_length: int = 32) -> tuple[Path, list[Any]]:
    training, held_out = split(read_log(log), 0.5)
    model = build_model(
        fit_ngram(training), name="incremental", version="0", sequence_length=sequence_length,
        threshold=3.0, threshold_method="mode",
    )  # fmt: skip
    onnx.save(model, str(out))
    return out, held_out[:CASES]


def _replay(
    model: Path | Scorer, events: Sequence[StreamingEvent], *, incremental: bool, **kwargs: Any
) -> tuple[StreamingEvaluator, list[StreamingEvaluation]]:
    evaluator = StreamingEvaluator(
        model, score_on_every_event=True, incremental=incremental, clock=lambda: 1.0, **kwargs
    )
    evaluations: list[StreamingEvaluation] = []
    for start in range(0, len(events), 500):
        evaluations += evaluator.on_events(events[start : start + 500])
    return evaluator, evaluations


def _unrounded(monkeypatch: pytest.MonkeyPatch) -> list[ScoreBatch]:
    """Every batch of scores as the evaluator got them, before records round them."""
    seen: list[ScoreBatch] = []
    explain = Blamer.explain

    def recording(self: Blamer, scorer: Scorer, batch: ScoreBatch, *args: Any) -> ScoreBatch:
        seen.append(batch)
        return explain(self, scorer, batch, *args)

    monkeypatch.setattr(Blamer, "explain", recording)
    return seen


@pytest.mark.parametrize("log", ["small-0.3-1.csv.gz", "p2p-0.3-2.csv.gz"])
def test_incremental_and_whole_ring_records_are_identical_on_shared_logs(
    log: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, traces = _exported(SHARED / log, tmp_path / "m.onnx")
    events = list(interleave(traces, open_cases=64, close_marker=True))
    contract = _embedded_contract(path)
    del contract["incremental"]  # nor is the ring narrowed to the batch's longest case
    undeclared = tmp_path / "whole-ring.json"
    undeclared.write_text(json.dumps(contract))
    whole_ring = CountingScorer(path, contract_path=undeclared)
    batches = _unrounded(monkeypatch)
    whole_ring.widths = []
    _, ring = _replay(whole_ring, events, incremental=False)
    assert set(whole_ring.widths) == {32}
    scorer = CountingScorer(path)
    ring_batch = ScoreBatch.concat(batches)
    batches.clear()
    scorer.widths = []
    _, windowed = _replay(scorer, events, incremental=True)
    assert 3 in scorer.widths  # the window ran
    windowed_batch = ScoreBatch.concat(batches)
    # Not only within 1e-6: the same float32 values (see SIMD_FLOATS in the scorer).
    np.testing.assert_array_equal(ring_batch.scores, windowed_batch.scores)
    np.testing.assert_array_equal(ring_batch.residuals, windowed_batch.residuals)
    assert [e.n_events for e in ring] == [e.n_events for e in windowed]
    assert max(e.n_events for e in ring) <= 32
    for whole, incremental in zip(ring, windowed, strict=True):
        assert abs(whole.trace_score - incremental.trace_score) <= 1e-6
        assert encode(whole) == encode(incremental)


def test_a_case_longer_than_the_ring_keeps_the_largest_score_of_all_its_events(
    tmp_path: Path,
) -> None:
    """Incremental: the running maximum of what the whole ring gave at each step."""
    path, traces = _exported(SHARED / "small-0.3-1.csv.gz", tmp_path / "m.onnx", 4)
    events = list(interleave(traces, open_cases=64, close_marker=True))
    _, ring = _replay(path, events, incremental=False)
    _, windowed = _replay(path, events, incremental=True)
    best: dict[str, float] = {}
    longer = 0
    for whole, incremental in zip(ring, windowed, strict=True):
        running = max(best.get(whole.case_id, 0.0), whole.trace_score)
        best[whole.case_id] = running
        assert incremental.trace_score == pytest.approx(running, abs=1e-6)
        if whole.n_events <= 4:
            assert encode(whole) == encode(incremental)
        longer += whole.n_events > 4 and incremental.trace_score > whole.trace_score + 1e-6
        if whole.closed:
            del best[whole.case_id]
    assert longer  # some long case remembers an event the ring has forgotten


def test_a_restored_case_starts_again_from_its_ring(tmp_path: Path) -> None:
    path, traces = _exported(SHARED / "p2p-0.3-2.csv.gz", tmp_path / "m.onnx")
    events = list(interleave(traces[:80], open_cases=40, close_marker=True))
    half = len(events) // 2
    source = StreamingEvaluator(path, score_on_every_event=True, track_changes=True)
    source.on_events(events[:half])
    changes = source.take_state_changes()
    _, expected = _replay(path, events, incremental=False)
    target = StreamingEvaluator(path, score_on_every_event=True, clock=lambda: 1.0)
    assert target._bound.incremental is not None
    for case_id, _, record in changes.states:
        target.restore_case(case_id, record)
    # Give the rows a running state that would pass as merged (a row's previous case could
    # leave one): restoring the cases again must void it.
    state = target._bound.incremental.state
    rows = target.store.rows()
    state.reserve(target.store.capacity)
    state.merged_through[rows] = target.store.n_events[rows]
    state.scores[rows] = state.residuals[rows] = 1000.0
    for case_id, _, record in changes.states:
        target.restore_case(case_id, record)
    later = target.on_events(events[half:])
    assert [encode(e) for e in later] == [encode(e) for e in expected[-len(later) :]]


def test_a_failing_case_stays_contained_and_the_others_are_unchanged(
    tiny_model: Path, tmp_path: Path
) -> None:
    failing = failing_copy(tiny_model, tmp_path / "failing.onnx", at_events=4)
    names = ["ABCE", "ABCCE", "ABDE", "AB"]
    users = {"A": "ann", "B": "bob", "C": "cid", "D": "dan", "E": "eve"}
    events = [
        StreamingEvent(f"c{c}", name, attributes={"user": users[name]}, close=i == len(s) - 1)
        for i in range(5)
        for c, s in enumerate(names)
        if i < len(s)
        for name in [s[i]]
    ]
    runs = [
        _replay(failing, events, incremental=mode, isolate_scoring_failures=True)
        for mode in (False, True)
    ]
    (ring_evaluator, ring), (windowed_evaluator, windowed) = runs
    assert [encode(e) for e in ring] == [encode(e) for e in windowed]
    failed = [(f.case_id, f.n_events) for f in ring_evaluator.scoring_failures]
    assert failed == [(f.case_id, f.n_events) for f in windowed_evaluator.scoring_failures]
    assert ("c1", 4) in failed and all(n >= 4 for _, n in failed)


def test_one_case_due_on_several_events_of_a_batch(tiny_model: Path) -> None:
    events = [StreamingEvent("c", name, attributes={"user": "ann"}) for name in "ABCCCCCB"]
    _, ring = _replay(tiny_model, events, incremental=False)
    _, windowed = _replay(tiny_model, events, incremental=True)
    assert [e.n_events for e in windowed] == list(range(1, 9))
    assert [encode(e) for e in ring] == [encode(e) for e in windowed]


def test_close_policy_and_models_without_the_block_keep_no_running_state(
    tiny_model: Path, tmp_path: Path
) -> None:
    assert StreamingEvaluator(tiny_model)._bound.incremental is None
    contract = _embedded_contract(BUNDLED_MODEL)
    del contract["incremental"]
    undeclared = tmp_path / "contract.json"
    undeclared.write_text(json.dumps(contract))
    whole_ring = StreamingEvaluator(
        BUNDLED_MODEL, score_on_every_event=True, contract_path=undeclared
    )
    assert whole_ring._bound.incremental is None
    declared = StreamingEvaluator(tiny_model, score_on_every_event=True)._bound.incremental
    assert declared is not None and declared.window == 3


def _embedded_contract(model: Path) -> dict[str, Any]:
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    contract: dict[str, Any] = json.loads(props[METADATA_KEY])
    return contract


def test_occurrences_rank_repeated_rows_in_order() -> None:
    rank, previous = occurrences(np.array([5, 2, 5, 5, 2, 9], np.int64))
    assert rank.tolist() == [0, 0, 1, 2, 1, 0]
    assert previous.tolist() == [-1, -1, 0, 2, 1, -1]


def test_running_state_grows_unmerged_and_forgets() -> None:
    state = RunningState(3)
    state.reserve(10)
    assert state.residuals.shape == (1024, 3)
    assert (state.merged_through == -1).all()
    state.merged_through[4] = 6
    state.residuals[4] = 1.5
    state.reserve(2000)
    assert state.merged_through[4] == 6 and state.residuals[4].tolist() == [1.5] * 3
    assert (state.merged_through[1024:] == -1).all()
    state.forget(np.array([4, 5000], np.int64))
    assert state.merged_through[4] == -1


def _with_incremental(model: Path, out: Path, block: Any) -> Path:
    loaded = onnx.load(str(model))
    entry = next(p for p in loaded.metadata_props if p.key == METADATA_KEY)
    contract = json.loads(entry.value)
    contract["incremental"] = block
    entry.value = json.dumps(contract)
    onnx.save(loaded, str(out))
    return out


def _with_fixed_ring(model: Path, out: Path) -> Path:
    """The model as exporters without a dynamic ring axis write it: every input 32 wide."""
    loaded = onnx.load(str(model))
    for graph_input in loaded.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[1].dim_param:
            dims[1].dim_value = 32
    onnx.save(loaded, str(out))
    return out


@pytest.mark.parametrize(
    ("model", "block", "message"),
    [
        ("tiny", {"window": 9}, "incremental window 9 is longer than the ring (sequence_length 8)"),
        ("tiny", {"window": 0}, "invalid contract at incremental.window"),
        ("tiny", {"window": 3, "merge": "sum"}, "invalid contract at incremental.merge"),
        ("tiny", {"size": 3}, "invalid contract at incremental"),
        ("fixed", {"window": 3}, "input 'sequence' has a fixed ring axis (32)"),
    ],
)
def test_a_bad_incremental_block_is_a_one_line_error(
    tiny_model: Path, tmp_path: Path, model: str, block: Any, message: str
) -> None:
    source = (
        tiny_model if model == "tiny" else _with_fixed_ring(BUNDLED_MODEL, tmp_path / "fixed.onnx")
    )
    bad = _with_incremental(source, tmp_path / "bad.onnx", block)
    with pytest.raises(ContractError) as error:
        Scorer(bad)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_after_a_model_swap_cases_start_again_from_their_ring(tmp_path: Path) -> None:
    path, traces = _exported(SHARED / "small-0.3-1.csv.gz", tmp_path / "m.onnx")
    events = list(interleave(traces[:60], open_cases=30, close_marker=True))
    _, expected = _replay(path, events, incremental=False)
    evaluator = StreamingEvaluator(path, score_on_every_event=True, clock=lambda: 1.0)
    half = len(events) // 2
    evaluations = evaluator.on_events(events[:half])
    before = evaluator._bound.incremental
    evaluator.swap_scorer(Scorer(path))
    assert evaluator._bound.incremental is not before
    evaluations += evaluator.on_events(events[half:])
    assert [encode(e) for e in evaluations] == [encode(e) for e in expected]


def test_scoring_a_case_again_without_a_new_event_changes_nothing(tiny_model: Path) -> None:
    evaluator = StreamingEvaluator(tiny_model, score_on_every_event=True, clock=lambda: 1.0)
    names = "ABCCCCE"
    last = evaluator.on_events([StreamingEvent("c", n, attributes={"user": "ann"}) for n in names])
    requested = [evaluator.score_case("c") for _ in range(2)]
    ring = StreamingEvaluator(tiny_model, score_on_every_event=True, incremental=False)
    ring.on_events([StreamingEvent("c", n, attributes={"user": "ann"}) for n in names])
    expected = ring.score_case("c")
    assert expected is not None
    for evaluation in requested:
        assert evaluation is not None
        assert evaluation.trace_score == last[-1].trace_score == expected.trace_score
        assert evaluation.per_transition_residuals == expected.per_transition_residuals


def _failing_at(model: Path, out: Path, length: int) -> Path:
    """A copy that fails on cases of exactly ``length`` events (an out-of-bounds Gather)."""
    return with_score_term(
        model,
        out,
        before="score_before_fault",
        term="fault_term",
        initializers=[
            numpy_helper.from_array(np.zeros(1, np.float32), "fault_table"),
            numpy_helper.from_array(np.array(float(length), np.float32), "fault_length"),
            numpy_helper.from_array(np.array(1000, np.int64), "fault_far"),
            numpy_helper.from_array(np.array([-1], np.int64), "fault_flat"),
        ],
        nodes=[
            helper.make_node("Equal", ["n_events", "fault_length"], ["fault_hit"]),
            helper.make_node("Cast", ["fault_hit"], ["fault_hit_i"], to=onnx.TensorProto.INT64),
            helper.make_node("Mul", ["fault_hit_i", "fault_far"], ["fault_index"]),
            helper.make_node("Gather", ["fault_table", "fault_index"], ["fault_gathered"]),
            helper.make_node("Reshape", ["fault_gathered", "fault_flat"], ["fault_term"]),
        ],
    )


def test_an_event_after_a_failed_one_in_the_same_batch_is_scored_on_the_ring(
    tiny_model: Path, tmp_path: Path
) -> None:
    """The failed evaluation left the running state behind: the next one cannot merge."""
    failing = _failing_at(tiny_model, tmp_path / "fault.onnx", 3)
    events = [StreamingEvent("c", n, attributes={"user": "ann"}) for n in "ABCCE"]
    events += [StreamingEvent("d", n, attributes={"user": "bob"}) for n in "AB"]
    scorer = CountingScorer(failing)
    runs = []
    for mode in (False, True):
        scorer.widths = []
        runs.append(_replay(scorer, events, incremental=mode, isolate_scoring_failures=True))
    (_, ring), (windowed_evaluator, windowed) = runs
    assert [encode(e) for e in ring] == [encode(e) for e in windowed]
    assert [e.n_events for e in windowed if e.case_id == "c"] == [1, 2, 4, 5]
    assert [(f.case_id, f.n_events) for f in windowed_evaluator.scoring_failures] == [("c", 3)]
    assert scorer.widths.count(8) >= 1  # the fallback run after the failure


def test_a_window_gives_the_newest_event_the_rings_value_to_the_bit(tiny_model: Path) -> None:
    """Whatever the window's width and the batch's size: onnxruntime's scalar tail path for
    tensors that do not fill whole SIMD registers is avoided by padding the run."""
    scorer = CountingScorer(tiny_model)
    scorer.widths = []
    fed: list[Features] = []
    run = scorer.run

    def recording(features: Features, batch_size: int) -> ScoreBatch:
        fed.append({name: array.copy() for name, array in features.items()})
        return run(features, batch_size)

    scorer.run = recording  # type: ignore[method-assign]
    _replay(scorer, [StreamingEvent("c", n, attributes={"user": "ann"}) for n in "ABCCE"],
            incremental=False)  # fmt: skip
    ring = {name: array[-1:] for name, array in fed[-1].items()}  # the case at 5 events
    expected = run(ring, 1)
    for width in range(3, 9):
        for rows in (1, 2, 5):
            window = {
                name: np.repeat(array[:, -width:] if array.ndim > 2 or name == "sequence"
                                else array, rows, axis=0)
                for name, array in ring.items()
            }  # fmt: skip
            got = run({k: np.ascontiguousarray(v) for k, v in window.items()}, rows)
            # The newest event, E, is the case's only E; older events are in the window's
            # residuals with their ring value or (context cut off by the window) not at all.
            newest = got.residuals[:, scorer.activity_ids["E"]]
            assert (newest == expected.residuals[0, scorer.activity_ids["E"]]).all(), (width, rows)
            assert (got.residuals <= expected.residuals[0]).all(), (width, rows)


def test_an_unknown_activity_counts_in_the_score_though_in_no_residual(tiny_model: Path) -> None:
    """The running score is kept apart from the residuals: an unknown activity's event score
    has no residual column, so the score is not the largest running residual."""
    events = [StreamingEvent("c", n, attributes={"user": "ann"}) for n in "ABZBCCE"]
    _, ring = _replay(tiny_model, events, incremental=False)
    _, windowed = _replay(tiny_model, events, incremental=True)
    assert [encode(e) for e in ring] == [encode(e) for e in windowed]
    last = windowed[-1]
    assert last.unknown_activities == 1
    assert last.trace_score > max(last.per_transition_residuals.values())
