"""``casewatch demo`` runs end to end with nothing but the package."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import casewatch_command, casewatch_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_demo_replays_the_bundled_log_and_prints_a_summary() -> None:
    result = subprocess.run(
        casewatch_command("demo"),
        env=casewatch_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cases               5,000 (5,000 evaluated closed)" in result.stdout
    assert "precision" in result.stdout
    assert "held-out" in result.stdout
    assert "events/s" in result.stdout
    # The metrics endpoint ends with the daemon: its URL would point nowhere.
    assert "http://" not in result.stdout
    assert "3 flagged cases" in result.stdout
    blamed = [line for line in result.stdout.splitlines() if line.lstrip().startswith("►")]
    assert len(blamed) == 3, result.stdout
    # The bundled model explains itself: each blamed event reads as its evaluation record's
    # reason, naming what was expected there and the model's probability for it.
    assert all(re.search(r"; expected .+ \([01]\.\d\d\)$", line) for line in blamed), blamed
    assert "against threshold" in result.stdout
