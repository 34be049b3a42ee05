"""A batch's explanation outputs: per case and position, the blamed feature and what the model
expected there (``casewatch.scoring.contract.ExplanationOutputs``), with the input ids they are
read against. Only models whose contract declares the outputs produce them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PositionExplanations:
    """Arrays [N, K + 1] (column K: the end of a closed case), plus ``sequence`` [N, K] and
    ``event_attributes`` [N, K, E] (None without event attributes) as the model read them.

    ``rows`` names the batch row each of the N rows explains (the anomalous cases, usually);
    None when there is one per batch row, in order.
    """

    surprise: FloatArray
    feature: IntArray
    expected: IntArray
    expected_probability: FloatArray
    observed_probability: FloatArray
    sequence: IntArray
    event_attributes: IntArray | None
    rows: IntArray | None = None
