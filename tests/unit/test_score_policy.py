"""One spelling of the score policy, ``every-event``, with ``every_event`` read as the same."""

from __future__ import annotations

import pytest

from casewatch.cli.config_doc import env_example, settings_reference_markdown
from casewatch.cli.main import build_parser
from casewatch.daemon.build import load_evaluator
from casewatch.errors import ConfigError
from casewatch.settings import Settings, load_settings

SPELLINGS = ["every-event", "every_event"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_settings_read_both_spellings_as_one(
    spelling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASEWATCH_SCORE_POLICY", spelling)
    assert load_settings().score_policy == "every-event"
    assert Settings(score_policy=spelling).score_policy == "every-event"


def test_an_unknown_policy_names_the_accepted_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEWATCH_SCORE_POLICY", "every")
    with pytest.raises(ConfigError, match=r"CASEWATCH_SCORE_POLICY: .*'close' or 'every-event'"):
        load_settings()


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_daemon_scores_on_every_event_with_either_spelling(spelling: str) -> None:
    evaluator = load_evaluator(Settings(score_policy=spelling))
    assert evaluator.score_on_every_event
    assert not load_evaluator(Settings(score_policy="close")).score_on_every_event


@pytest.mark.parametrize("command", ["score", "evaluate", "demo"])
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_commands_read_both_spellings_as_one(command: str, spelling: str) -> None:
    argv = [command, "--policy", spelling]
    if command != "demo":
        argv[1:1] = ["log.csv", "--model", "m.onnx"]
    assert build_parser(argv).parse_args(argv).policy == "every-event"


def test_commands_refuse_an_unknown_policy(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["score", "log.csv", "--model", "m.onnx", "--policy", "sometimes"]
    with pytest.raises(SystemExit):
        build_parser(argv).parse_args(argv)
    assert "choose from 'close', 'every-event'" in capsys.readouterr().err


def test_the_docs_show_the_hyphenated_spelling() -> None:
    row = next(
        line for line in settings_reference_markdown().splitlines() if "SCORE_POLICY" in line
    )
    assert "`close` \\| `every-event`" in row
    assert "`every_event` is read as `every-event`" in row
    example = " ".join(line.removeprefix("# ") for line in env_example().splitlines())
    assert "(every_event is read as every-event). One of: close, every-event." in example
