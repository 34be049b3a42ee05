"""How a model that can score incrementally is run under every-event scoring.

A model whose contract declares ``incremental`` is scored on each case's newest events against
running residuals (``casewatch.scoring.incremental``): cheaper per event, and a case longer
than the ring keeps the largest score of all its events. Turning it off scores the whole ring on
every event, so a long case is judged only on the events the ring still holds, as under the
close policy. A private part of ``casewatch.settings``.
"""

from __future__ import annotations

from pydantic import Field

from casewatch._settings_explanations import ExplanationSettings


class ScoringSettings(ExplanationSettings):
    """Incremental scoring, after the explanations."""

    incremental_scoring: bool = Field(
        True,
        description=(
            "Under every-event scoring, score a model that declares `incremental` on each "
            "case's newest events (a case longer than the ring keeps the largest score of all "
            "its events); false scores the whole ring on every event."
        ),
    )
