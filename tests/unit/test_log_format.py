"""The log format: console on a terminal, JSON otherwise, and the same choice for every command."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from casewatch.errors import ConfigError
from casewatch.telemetry.logging import (
    configure_logging,
    configure_logging_from_env,
    get_logger,
    resolve_format,
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        configure_logging("INFO", "json")
        root.setLevel(level)


@pytest.mark.parametrize(("tty", "expected"), [(True, "console"), (False, "json")])
def test_auto_follows_whether_stderr_is_a_terminal(tty: bool, expected: str) -> None:
    assert resolve_format("auto", tty=tty) == expected


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_an_explicit_format_is_kept_on_any_stream(fmt: str) -> None:
    assert resolve_format(fmt, tty=True) == fmt
    assert resolve_format(fmt, tty=False) == fmt


def test_an_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="use json, console or auto"):
        resolve_format("xml")


def test_commands_read_the_format_and_level_from_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging_from_env({"CASEWATCH_LOG_FORMAT": "json", "CASEWATCH_LOG_LEVEL": "INFO"})
    get_logger("casewatch.test").info("hello", n=1)
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["event"] == "hello" and record["n"] == 1 and record["level"] == "info"


def test_commands_log_warnings_only_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging_from_env({"CASEWATCH_LOG_FORMAT": "json"})
    get_logger("casewatch.test").info("quiet")
    get_logger("casewatch.test").warning("loud")
    err = capsys.readouterr().err
    assert "quiet" not in err and "loud" in err


def test_a_bad_format_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CASEWATCH_LOG_FORMAT"):
        configure_logging_from_env({"CASEWATCH_LOG_FORMAT": "yaml"})
