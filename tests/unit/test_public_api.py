from __future__ import annotations

import importlib
import types

import pytest

import casewatch

SUBPACKAGES = ["cli", "daemon", "kafka", "offline", "scoring", "state", "telemetry"]


def test_exports_are_complete_and_sorted() -> None:
    public = {
        name
        for name, value in vars(casewatch).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(casewatch.__all__) == set()
    assert casewatch.__all__ == sorted(casewatch.__all__)
    for name in casewatch.__all__:
        assert getattr(casewatch, name).__module__.startswith("casewatch")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_stage_exports_what_others_use(name: str) -> None:
    package = importlib.import_module(f"casewatch.{name}")
    assert package.__doc__
    exported = getattr(package, "__all__", [])
    assert exported == sorted(exported)
    for attribute in exported:
        assert getattr(package, attribute).__module__.startswith(f"casewatch.{name}.")


def test_the_package_runs_as_a_module() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "casewatch", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "COMMAND" in result.stdout
