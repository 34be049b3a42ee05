"""What the reference scorer expects at each place: the likeliest activity after every n-gram
context and after every last activity, with its probability.

An event's surprise is ``log max_v p(v | ctx) - log p(observed | ctx)``: the maximum is taken over
an activity the model could name. These tables keep that activity and ``max_v p(v | ctx)`` so an
exported graph can name what it expected in place of a blamed event, and say how sure it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Expectations:
    """``next_activity`` and ``next_probability`` have one entry per n-gram context (the previous
    ``order - 1`` ids, the oldest first, flattened); ``after_last*`` one per last activity, for the
    end of a closed case (which the scorer judges on the last activity alone)."""

    next_activity: IntArray
    next_probability: FloatArray
    after_last_activity: IntArray
    after_last_probability: FloatArray

    @staticmethod
    def of(transitions: FloatArray, bigrams: FloatArray) -> Expectations:
        """From ``p(target | context)`` along the last axis of each table; ties: the lower id."""
        width = transitions.shape[-1]
        flat = transitions.reshape(-1, width)
        return Expectations(
            next_activity=np.argmax(flat, axis=1).astype(np.int64),
            next_probability=flat.max(axis=1),
            after_last_activity=np.argmax(bigrams, axis=1).astype(np.int64),
            after_last_probability=bigrams.max(axis=1),
        )


def likeliest_values(probabilities: FloatArray) -> IntArray:
    """Per activity (row), the attribute value id with the highest ``p(value | activity)``."""
    likeliest: IntArray = np.argmax(probabilities, axis=1).astype(np.int64)
    return likeliest
