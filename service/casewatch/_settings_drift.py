"""How the daemon watches its input drift away from what the model was trained on.

A private part of ``casewatch.settings``; the metrics are ``casewatch.telemetry.drift_series``.
"""

from __future__ import annotations

from pydantic import Field

from casewatch._settings_alerts import AlertSettings
from casewatch.telemetry.drift_series import DEFAULT_DRIFT_WINDOW


class DriftSettings(AlertSettings):
    """The drift window, after the wire formats."""

    drift_window: int = Field(
        DEFAULT_DRIFT_WINDOW,
        ge=10,
        le=100_000,
        description=(
            "Final evaluations (closed, timed-out or evicted cases) the drift metrics are "
            "computed over; per worker with `CASEWATCH_WORKERS` > 1."
        ),
    )
