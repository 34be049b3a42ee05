from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from casewatch import ContractError, ModelError, Scorer, StreamingEvaluator, StreamingEvent
from casewatch.scoring.contract import METADATA_KEY


def rewrite(source: Path, target: Path, change: str) -> Path:
    model = onnx.load(str(source))
    contract = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    if change == "rename_input":
        contract["inputs"][0]["name"] = "seq"
    elif change == "wrong_dtype":
        contract["inputs"][1]["features"] = ["sequence"]
    elif change == "activities":
        contract["activities"] = contract["activities"][:-1]
    elif change == "no_metadata":
        contract = None
    del model.metadata_props[:]
    if contract is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(contract)
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("rename_input", "graph input 'sequence' is not bound"),
        ("wrong_dtype", "input 'n_events' is FLOAT, contract needs INT64"),
        ("activities", "output 'residuals' axis 1 is 5, contract needs 4"),
        ("no_metadata", "no 'casewatch.contract' metadata"),
    ],
)
def test_contract_mismatch_is_a_one_line_error(
    tiny_model: Path, tmp_path: Path, change: str, message: str
) -> None:
    bad = rewrite(tiny_model, tmp_path / "bad.onnx", change)
    with pytest.raises(ContractError) as error:
        Scorer(bad)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_not_a_model_and_missing_file_are_model_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx at all")
    for path in (junk, tmp_path / "missing.onnx"):
        with pytest.raises(ModelError) as error:
            Scorer(path)
        assert "\n" not in str(error.value)


def test_check_model_command(tiny_model: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "casewatch", "check-model", str(tiny_model)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("OK: tiny 1, ")
    bad = rewrite(tiny_model, tmp_path / "bad.onnx", "rename_input")
    failed = subprocess.run(
        [sys.executable, "-m", "casewatch", "check-model", str(bad)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert failed.returncode == 1
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "not bound by the contract" in failed.stderr


def test_foreign_model_with_a_contract_file(tmp_path: Path) -> None:
    """An IsolationForest exported by skl2onnx: score output only, lower = more anomalous."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(0)
    b_count = rng.integers(1, 3, 200)
    normal = np.column_stack([np.ones(200), b_count, 1 + b_count]).astype(np.float32)
    forest = IsolationForest(random_state=0).fit(normal)
    model = to_onnx(forest, normal[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    model_path = tmp_path / "forest.onnx"
    model_path.write_bytes(model.SerializeToString())
    input_name = model.graph.input[0].name
    contract = {
        "name": "forest", "version": "1", "activities": ["A", "B"], "threshold": 0.0,
        "inputs": [{"name": input_name, "features": ["activity_counts", "n_events"]}],
        "score": {"name": "scores", "higher_is_anomalous": False},
    }  # fmt: skip
    contract_path = tmp_path / "forest.contract.json"
    contract_path.write_text(json.dumps(contract))
    with pytest.raises(ContractError):
        Scorer(model_path)
    evaluator = StreamingEvaluator(model_path, contract_path=contract_path)
    evaluator.on_events(
        [StreamingEvent("ok", "A"), StreamingEvent("ok", "B"), StreamingEvent("ok", "B")]
    )
    evaluator.on_events([StreamingEvent("odd", "A")] * 9)
    ok, odd = evaluator.close_case("ok"), evaluator.close_case("odd")
    assert ok is not None and odd is not None
    assert odd.trace_score > ok.trace_score
    assert ok.per_transition_residuals == {} and ok.top_transitions == []


def test_a_contract_without_the_threshold_provenance_still_loads(
    tiny_model: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(tiny_model))
    contract = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    assert contract["threshold_method"] == "mode" and contract["expected_flagged_share"] is not None
    for key in ("false_alarm_rate", "expected_flagged_share"):
        del contract[key]
    contract["threshold_method"] = "otsu"
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(contract)
    onnx.save(model, str(tmp_path / "old.onnx"))
    loaded = Scorer(tmp_path / "old.onnx").contract
    assert loaded.false_alarm_rate is None and loaded.expected_flagged_share is None


def test_an_expected_flagged_share_outside_zero_to_one_is_refused(
    tiny_model: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(tiny_model))
    contract = json.loads(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    contract["expected_flagged_share"] = 1.5
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(contract)
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(ContractError, match="invalid contract at expected_flagged_share"):
        Scorer(tmp_path / "bad.onnx")
