"""The command line: help with defaults, --version, one policy default, the bundled model."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from casewatch.cli._replay_args import DEFAULT_POLICY, replay_model
from casewatch.cli.main import COMMANDS, build_parser, main
from casewatch.settings import Settings, bundled_model_path, env_name
from tests.failing_model import failing_copy
from tests.unit.test_contract import rewrite


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "100")


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"Usage: casewatch {command}" in _help(capsys, command)


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    score = " ".join(_help(capsys, "score").split())
    assert "(default: close)" in score
    assert "(default: 0.0)" in score
    assert "(default: the reference model bundled with casewatch)" in score
    # Options without a value worth showing say nothing rather than "(default: None)".
    assert "None" not in score
    train = " ".join(_help(capsys, "train").split())
    assert "n-gram order (default: 3)" in train
    assert "(default: mode)" in train
    assert train.count("(default: mode)") == 1


def test_top_level_help_reads_as_a_product(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    assert text.splitlines()[2].startswith("casewatch watches business processes")
    assert "examples:" in text
    assert "casewatch check-model models/p2p.onnx" in text
    assert "The entry point" not in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"casewatch {importlib.metadata.version('casewatch')}\n"


@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_replay_commands_share_the_daemons_default_policy(command: str) -> None:
    argv = [command, "log.csv"]
    assert build_parser(argv).parse_args(argv).policy == DEFAULT_POLICY
    assert Settings().score_policy == DEFAULT_POLICY


@pytest.mark.parametrize("command", ["score", "evaluate"])
@pytest.mark.parametrize("spelling", ["every-event", "every_event"])
def test_policy_aliases(command: str, spelling: str) -> None:
    argv = [command, "log.csv", "--policy", spelling]
    assert build_parser(argv).parse_args(argv).policy == "every-event"


@pytest.mark.parametrize("command", ["score", "evaluate"])
def test_the_bundled_model_is_the_default(command: str, tmp_path: Path) -> None:
    argv = [command, "log.csv"]
    assert replay_model(build_parser(argv).parse_args(argv)) == bundled_model_path()
    mine = tmp_path / "mine.onnx"
    argv = [command, "log.csv", "--model", str(mine)]
    assert replay_model(build_parser(argv).parse_args(argv)) == mine


def test_score_runs_on_the_bundled_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "p2p.csv"
    rows = ["case:concept:name,concept:name,time:timestamp"]
    for case in ("c1", "c2"):
        for minute, activity in enumerate(("Create PR", "Approve PR", "Create PO")):
            rows.append(f"{case},{activity},2024-01-01T10:0{minute}:00")
    log.write_text("\n".join(rows) + "\n")
    assert main(["score", str(log)]) == 0
    assert capsys.readouterr().out.startswith("2 cases, 6 events, 2 evaluations")


def test_run_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    lines = _help(capsys, "run").splitlines()
    assert "environment variables (name, default, what it sets):" in lines
    for name in Settings.model_fields:
        if name in ("kafka", "schema_registry"):
            continue
        assert any(line.startswith(f"  {env_name(name)}  default: ") for line in lines), name
    assert "  CASEWATCH_SCORE_POLICY  default: close" in lines
    assert "  CASEWATCH_BOOTSTRAP_SERVERS  default: localhost:9092" in lines
    assert any(line.startswith("  CASEWATCH_KAFKA__<PROPERTY>") for line in lines)
    assert any(line.startswith("  CASEWATCH_SCHEMA_REGISTRY__<PROPERTY>") for line in lines)
    described = lines[lines.index("  CASEWATCH_INPUT_TOPIC  default: casewatch-events") + 1]
    assert described.strip() == "Topic of input events."


def test_check_model_summary_and_verdict(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-model", str(tiny_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model       tiny 1  sha256 ")
    assert any(line.startswith("activities  5: A, B, C, D, E") for line in lines)
    assert lines[-1].startswith("OK: tiny 1, 5 activities, threshold ")
    assert lines[-1].endswith(", scores close and every-event")
    assert len("\n".join(lines)) < 1500


def test_check_model_json_keeps_the_full_contract(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-model", str(tiny_model), "--json"]) == 0
    out = capsys.readouterr().out
    body, verdict = out.rstrip("\n").rsplit("\n", 1)
    assert json.loads(body)["activities"] == ["A", "B", "C", "D", "E"]
    assert verdict.startswith("OK: tiny 1, ")


def test_check_model_defaults_to_the_bundled_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-model"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK: reference ")


def test_check_model_defaults_to_the_daemons_model_path(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Run inside the daemon's container, check-model checks the model the daemon would load.
    monkeypatch.setenv("CASEWATCH_MODEL_PATH", str(tiny_model))
    assert main(["check-model"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK: tiny 1, ")


def test_check_model_verdict_on_a_bad_model(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = rewrite(tiny_model, tmp_path / "bad.onnx", "rename_input")
    assert main(["check-model", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("INVALID: ") and "not bound by the contract" in captured.err


def test_unreadable_input_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("casewatch score: ") and len(err.splitlines()) == 1
    log = tmp_path / "log.csv"
    log.write_text("case:concept:name,concept:name,time:timestamp\nc1,Create PR,2024-01-01\n")
    assert main(["score", str(log), "--out", str(tmp_path / "no" / "out.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err == f"casewatch score: {tmp_path / 'no' / 'out.jsonl'}: No such file or directory\n"


def test_bad_arguments_fail_with_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["score", "log.csv", "--skip-fraction", "half"])
    assert exit_.value.code == 2
    assert "invalid float value: 'half'" in capsys.readouterr().err


def test_produce_warns_about_a_misspelled_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CASEWATCH_BOOTSTRAP_SERVER": "localhost:9092"}
    result = subprocess.run(
        [sys.executable, "-m", "casewatch", "produce", str(tmp_path / "log.csv"), "--topic", "t"],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    warning = json.loads(result.stderr.splitlines()[0])  # not a terminal: JSON lines
    assert warning["event"] == "unknown_setting"
    assert warning["closest"] == "CASEWATCH_BOOTSTRAP_SERVERS"
    assert result.stderr.splitlines()[-1].startswith("casewatch produce: invalid configuration")


def test_check_model_scores_a_short_case_before_saying_ok(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    always = failing_copy(tiny_model, tmp_path / "always.onnx", at_events=0)
    assert main(["check-model", str(always)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"INVALID: {always}: ") and len(err.splitlines()) == 1
    # A latent failure on long cases is beyond a short probe: such a model still loads.
    later = failing_copy(tiny_model, tmp_path / "later.onnx", at_events=50)
    assert main(["check-model", str(later)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("OK: tiny 1, ")
