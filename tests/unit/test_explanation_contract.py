"""The contract's optional explanation block: declared outputs are checked against the graph,
and a model without the block still loads and scores, producing no explanations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from casewatch import ContractError, Scorer, StreamingEvaluator, StreamingEvent
from casewatch.scoring.contract import METADATA_KEY


def _with_contract(source: Path, target: Path, change: Any) -> Path:
    model = onnx.load(str(source))
    contract = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    change(contract)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(contract)
    onnx.save(model, str(target))
    return target


def _events(case_id: str, names: str) -> list[StreamingEvent]:
    users = {"A": "ann", "B": "bob", "C": "cid", "D": "dan", "E": "eve"}
    return [
        StreamingEvent(case_id, n, attributes={"user": users[n]}, close=i == len(names) - 1)
        for i, n in enumerate(names)
    ]


def test_the_trained_model_declares_its_explanation_outputs(tiny_model: Path) -> None:
    scorer = Scorer(tiny_model)
    assert scorer.contract.explanation is not None
    roles = [role for role, _ in scorer.contract.explanation.outputs()]
    assert roles == [
        "surprise", "feature", "expected", "expected_probability", "observed_probability"
    ]  # fmt: skip
    assert scorer.explains
    features = {
        "sequence": np.full((3, 8), len(scorer.activities) + 1, np.int64),
        "n_events": np.zeros((3, 1), np.float32),
        "closed": np.zeros((3, 1), np.float32),
        "event_attributes": np.zeros((3, 8, 1), np.int64),
    }
    assert scorer.run(features, 3).explanation is None  # scoring alone runs a cut-down graph
    explanation = scorer.explain(features, np.asarray([0, 2]))
    assert explanation.surprise.shape == (2, 9)
    assert explanation.sequence.shape == (2, 8)


def _set(role: str, output: str) -> Any:
    return lambda contract: contract["explanation"].__setitem__(role, output)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("expected", "no_such_output"), "explanation expected output 'no_such_output' not"),
        (_set("surprise", "explain_feature"), "output 'explain_feature' is INT64, contract needs"),
        (_set("feature", "explain_surprise"), "output 'explain_surprise' is FLOAT, contract needs"),
        (_set("surprise", "residuals"), "output 'residuals' axis 1 is 5, contract needs 9"),
        (_set("surprise", "score"), "output 'score' has rank 1, contract needs 2"),
        (lambda c: c["explanation"].pop("observed_probability"), "explanation.observed_prob"),
        (lambda c: c["explanation"].update(extra="x"), "invalid contract at explanation.extra"),
        # The ring axis of the inputs is dynamic; the explanation outputs still pin its length.
        (lambda c: c.update(sequence_length=9), "axis 1 is 9, contract needs 10"),
    ],
)
def test_a_bad_explanation_declaration_is_a_one_line_error(
    tiny_model: Path, tmp_path: Path, change: Any, message: str
) -> None:
    bad = _with_contract(tiny_model, tmp_path / "bad.onnx", change)
    with pytest.raises(ContractError) as error:
        Scorer(bad)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_model_without_the_block_loads_and_its_records_carry_no_explanation(
    tiny_model: Path, tmp_path: Path
) -> None:
    plain = _with_contract(tiny_model, tmp_path / "plain.onnx", lambda c: c.pop("explanation"))
    scorer = Scorer(plain)
    assert scorer.contract.explanation is None and not scorer.explains
    evaluations = StreamingEvaluator(scorer).on_events(
        [*_events("odd", "ACE"), *_events("fine", "ABCE")]
    )
    odd, fine = evaluations
    assert odd.anomalous and not fine.anomalous
    assert odd.explanation is None and fine.explanation is None
    explained = StreamingEvaluator(Scorer(tiny_model)).on_events(_events("odd", "ACE"))[0]
    assert explained.trace_score == pytest.approx(odd.trace_score, abs=1e-6)
    assert explained.explanation
