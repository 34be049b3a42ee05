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
    """Arrays [B, K + 1] (column K: the end of a closed case), plus ``sequence`` [B, K] and
    ``event_attributes`` [B, K, E] (None without event attributes) as the model read them."""

    surprise: FloatArray
    feature: IntArray
    expected: IntArray
    expected_probability: FloatArray
    observed_probability: FloatArray
    sequence: IntArray
    event_attributes: IntArray | None

    def take(self, rows: IntArray) -> PositionExplanations:
        attributes = self.event_attributes
        return PositionExplanations(
            self.surprise[rows],
            self.feature[rows],
            self.expected[rows],
            self.expected_probability[rows],
            self.observed_probability[rows],
            self.sequence[rows],
            None if attributes is None else attributes[rows],
        )

    @staticmethod
    def concat(parts: list[PositionExplanations]) -> PositionExplanations:
        if len(parts) == 1:
            return parts[0]
        attributes = [p.event_attributes for p in parts]
        return PositionExplanations(
            np.concatenate([p.surprise for p in parts]),
            np.concatenate([p.feature for p in parts]),
            np.concatenate([p.expected for p in parts]),
            np.concatenate([p.expected_probability for p in parts]),
            np.concatenate([p.observed_probability for p in parts]),
            np.concatenate([p.sequence for p in parts]),
            None if any(a is None for a in attributes) else np.concatenate(attributes),  # type: ignore[arg-type]
        )
