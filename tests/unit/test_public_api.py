from __future__ import annotations

import casewatch


def test_exports_are_complete_and_sorted() -> None:
    public = {name for name in vars(casewatch) if not name.startswith("_")}
    modules = {"cli", "commands"}
    assert public - modules - set(casewatch.__all__) == set()
    assert casewatch.__all__ == sorted(casewatch.__all__)
    for name in casewatch.__all__:
        assert getattr(casewatch, name).__module__.startswith("casewatch")


def test_the_package_runs_as_a_module() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "casewatch", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "COMMAND" in result.stdout
