"""What a model saw in training, as the daemon reads it: the baseline of its drift metrics.

The summary is JSON stored in the ONNX file's ``metadata_props`` under
``casewatch.training_summary``, next to (and independent of) the contract; ``casewatch train``
writes it (``casewatch.offline.training_summary``). It holds the training cases' final score
distribution as quantile bins, the share of them flagged at the model's threshold, how often
each activity and each event attribute value occurred, and how many cases and events there
were. A model without it (exported elsewhere, or trained before it existed) still scores; only
the drift metrics that need a baseline are left out. A summary that cannot be parsed is treated
the same way, with a warning, because it never affects a score.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from casewatch.telemetry.logging import get_logger

SUMMARY_METADATA_KEY = "casewatch.training_summary"

log = get_logger(__name__)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoreBins(_Frozen):
    """Bins of the training cases' final scores for a population stability index.

    ``edges`` are the inner bin edges, ascending: bin 0 is ``score <= edges[0]``, bin ``i`` is
    ``edges[i-1] < score <= edges[i]``, the last bin ``score > edges[-1]``; ``shares`` (one
    more than ``edges``) are the training cases' shares of each bin.
    """

    edges: list[float]
    shares: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ScoreBins:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError("shares must have one entry more than edges")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly ascending")
        if any(share < 0 for share in self.shares) or abs(sum(self.shares) - 1) > 1e-6:
            raise ValueError("shares must be non-negative and add up to 1")
        return self

    def bin_of(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """The bin index of every score (right-closed bins, as the edges say)."""
        edges = np.asarray(self.edges, dtype=np.float64)
        return np.searchsorted(edges, scores, side="left").astype(np.int64)


class AttributeValues(_Frozen):
    """How often each value of one per-event attribute occurred in the training events."""

    name: str
    # Training events that carried the attribute at all.
    values_seen: int = Field(ge=0)
    value_counts: dict[str, int]

    @property
    def singletons(self) -> int:
        return sum(1 for count in self.value_counts.values() if count == 1)


class TrainingSummary(_Frozen):
    schema_version: Literal[1] = 1
    cases: int = Field(ge=1)
    events: int = Field(ge=0)
    score_bins: ScoreBins
    threshold: float
    # Share of the training cases whose final score is above the threshold.
    flagged_share: float = Field(ge=0, le=1)
    activity_counts: dict[str, int]
    attributes: list[AttributeValues] = []

    @property
    def expected_unknown_value_rate(self) -> float | None:
        """Share of attribute values the model is expected not to know on new data of the same
        process: the Good-Turing estimate of the unseen mass, values seen once / values seen."""
        seen = sum(a.values_seen for a in self.attributes)
        if not seen:
            return None
        return sum(a.singletons for a in self.attributes) / seen

    def to_json(self) -> str:
        return self.model_dump_json()


def read_training_summary(model: onnx.ModelProto, *, origin: str) -> TrainingSummary | None:
    """The model's training summary; None when it has none or it cannot be parsed."""
    text = {p.key: p.value for p in model.metadata_props}.get(SUMMARY_METADATA_KEY)
    if text is None:
        return None
    try:
        return TrainingSummary.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "summary"
        log.warning(
            "training_summary_invalid",
            model=origin,
            error=f"{where}: {first['msg']}",
            consequence="drift metrics that need the training baseline are left out",
        )
        return None


def embed_training_summary(model: onnx.ModelProto, summary: TrainingSummary) -> None:
    """Store ``summary`` in ``model``'s metadata, replacing an earlier one."""
    for prop in list(model.metadata_props):
        if prop.key == SUMMARY_METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key = SUMMARY_METADATA_KEY
    entry.value = summary.to_json()
