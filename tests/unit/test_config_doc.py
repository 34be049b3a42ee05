from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import casewatch.cli.config_doc
from casewatch.cli.config_doc import END_MARKER, START_MARKER, settings_reference_markdown
from casewatch.settings import Settings, env_name

README = Path(__file__).parents[2] / "README.md"


def test_table_lists_every_setting() -> None:
    table = settings_reference_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(Settings.model_fields)
    for name in Settings.model_fields:
        if name not in ("kafka", "schema_registry"):
            assert f"`{env_name(name)}`" in table
    assert "`CASEWATCH_KAFKA__<PROPERTY>`" in table
    assert "`CASEWATCH_SCHEMA_REGISTRY__<PROPERTY>`" in table
    # Pipes inside cells are escaped, so every row splits into exactly four cells.
    assert all(len(re.split(r"(?<!\\)\|", row)) == 6 for row in rows)


def test_module_prints_the_table() -> None:
    package_root = Path(casewatch.cli.config_doc.__file__).parents[2]
    printed = subprocess.run(
        [sys.executable, "-m", "casewatch.cli.config_doc"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(package_root)},
    ).stdout
    assert printed == settings_reference_markdown()


def test_readme_carries_the_current_table() -> None:
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    text = README.read_text(encoding="utf-8")
    if START_MARKER not in text or END_MARKER not in text:
        pytest.skip(f"README.md has no {START_MARKER} ... {END_MARKER} section yet")
    between = text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert between.strip() == settings_reference_markdown().strip(), (
        "README.md's settings table is stale; "
        "regenerate it with `python -m casewatch.cli.config_doc`"
    )


def test_env_example_is_generated_from_the_settings() -> None:
    from casewatch.cli.config_doc import env_example

    example = Path(__file__).parents[2] / "config" / "casewatch.env.example"
    assert example.read_text(encoding="utf-8") == env_example(), (
        "regenerate: "
        "python -m casewatch.cli.config_doc --env-example > config/casewatch.env.example"
    )
