"""How much an anomalous evaluation says about why: the number of blamed events it names.

A model whose contract declares explanation outputs lets each anomalous evaluation name its
blamed events and what was expected in their place (``casewatch.scoring.blame``); normal
evaluations never carry one. A private part of ``casewatch.settings``.
"""

from __future__ import annotations

from pydantic import Field

from casewatch._settings_drift import DriftSettings
from casewatch.scoring.blame import DEFAULT_TOP_K


class ExplanationSettings(DriftSettings):
    """The explanation of anomalous evaluations, after the wire formats."""

    explanation_top_k: int = Field(
        DEFAULT_TOP_K,
        ge=0,
        le=64,
        description=(
            "Most blamed events an anomalous evaluation names in its `explanation` (largest "
            "surprise first), for models with explanation outputs; 0 writes none."
        ),
    )
