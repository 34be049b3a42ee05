"""The contract's optional ``incremental`` block: a model that can score a case from its newest
events alone.

``{"window": W, "merge": "max"}`` declares that running the graph on the last ``W`` events of a
case (``sequence`` and ``event_attributes`` ``W`` wide, right-aligned, the other features as for
the whole ring) gives the newest event the value the whole ring gives it, and that no older
event's contribution changes once its successor is in the window. The case's score is then the
largest window score over all its steps (oriented by ``higher_is_anomalous``, so the largest is
the most anomalous) and its residuals the elementwise largest window residuals. casewatch uses it
when it scores on every event (``casewatch.scoring.incremental``); for a case within the ring the
result equals the whole ring's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import onnx
from pydantic import BaseModel, ConfigDict, Field

from casewatch.errors import ContractError

if TYPE_CHECKING:
    from casewatch.scoring.contract import Contract


class Incremental(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(ge=1)
    merge: Literal["max"] = "max"


# The inputs a window narrows; every other feature describes the whole case.
WINDOWED_FEATURES = ("sequence", "event_attributes")


def validate_incremental(contract: Contract, graph: onnx.GraphProto, *, origin: str) -> None:
    """The window fits the ring, the model reads the sequence, and its ring axis is dynamic so
    the graph accepts a window narrower than the ring."""
    incremental = contract.incremental
    if incremental is None:
        return
    if incremental.window > contract.sequence_length:
        raise ContractError(
            f"{origin}: incremental window {incremental.window} is longer than the ring "
            f"(sequence_length {contract.sequence_length})"
        )
    if "sequence" not in contract.features:
        raise ContractError(f"{origin}: incremental scoring needs the 'sequence' feature as input")
    if incremental.window == contract.sequence_length:
        return
    windowed = {b.name for b in contract.inputs if b.features[0] in WINDOWED_FEATURES}
    for value_info in graph.input:
        if value_info.name not in windowed:
            continue
        ring_axis = value_info.type.tensor_type.shape.dim[1]
        if ring_axis.HasField("dim_value"):
            raise ContractError(
                f"{origin}: incremental input {value_info.name!r} has a fixed ring axis "
                f"({ring_axis.dim_value}); a window of {incremental.window} needs it dynamic"
            )
