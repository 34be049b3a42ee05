"""The contract's optional ``incremental`` block: a model that can score a case from its newest
events alone.

``{"window": W, "merge": "max"}`` declares that running the graph on the last ``W`` events of a
case (``sequence`` and ``event_attributes`` ``W`` wide, right-aligned, the other features as for
the whole ring) gives the newest event the value the whole ring gives it, and that no older
event's contribution changes once its successor is in the window. The case's score is then the
largest window score over all its steps (oriented by ``higher_is_anomalous``, so the largest is
the most anomalous) and its residuals the elementwise largest window residuals. casewatch uses it
when it scores on every event (``casewatch.scoring.incremental``); for a case within the ring the
result equals the whole ring's. Under either policy it also runs a batch of cases shorter than
the ring on the ring cut to the longest of them (``casewatch.scoring.incremental.narrow_ring``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import onnx
from pydantic import BaseModel, ConfigDict, Field

from casewatch.errors import ContractError


class Incremental(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(ge=1)
    merge: Literal["max"] = "max"


# The inputs a window narrows; every other feature describes the whole case.
WINDOWED_FEATURES = ("sequence", "event_attributes")


def validate_incremental(
    incremental: Incremental | None,
    graph: onnx.GraphProto,
    sequence_length: int,
    inputs: Mapping[str, Collection[str]],
    origin: str,
) -> None:
    """The window fits the ring, the model reads the sequence, and its ring axis is dynamic so
    the graph accepts a window narrower than the ring. ``inputs``: graph input -> features."""
    if incremental is None:
        return
    if incremental.window > sequence_length:
        raise ContractError(
            f"{origin}: incremental window {incremental.window} is longer than the ring "
            f"(sequence_length {sequence_length})"
        )
    if not any("sequence" in features for features in inputs.values()):
        raise ContractError(f"{origin}: incremental scoring needs the 'sequence' feature as input")
    if incremental.window == sequence_length:
        return
    windowed = {name for name, features in inputs.items() if set(features) & set(WINDOWED_FEATURES)}
    for value_info in graph.input:
        if value_info.name not in windowed:
            continue
        ring_axis = value_info.type.tensor_type.shape.dim[1]
        if ring_axis.HasField("dim_value"):
            raise ContractError(
                f"{origin}: incremental input {value_info.name!r} has a fixed ring axis "
                f"({ring_axis.dim_value}); a window of {incremental.window} needs it dynamic"
            )
