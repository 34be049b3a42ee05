"""A scorer whose verdict on a case follows its length: known to cross the threshold at will.

The copy adds ``offsets[n_events]`` to the score (the last offset for longer cases), so a case
that the original model finds normal all along is judged anomalous exactly at the lengths whose
offset is large: a case that flaps below and above the threshold, event by event.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tests.score_term import with_score_term

# Far above any threshold the bundled models learn.
ABOVE = 1000.0


def shifted_copy(model: Path, out: Path, offsets: Sequence[float]) -> Path:
    return with_score_term(
        model,
        out,
        before="score_before_shift",
        term="shift_term",
        initializers=[
            numpy_helper.from_array(np.asarray(offsets, np.float32), "shift_table"),
            numpy_helper.from_array(np.array([len(offsets) - 1], np.int64), "shift_last"),
            numpy_helper.from_array(np.array([-1], np.int64), "shift_flat"),
        ],
        nodes=[
            helper.make_node("Cast", ["n_events"], ["shift_length"], to=onnx.TensorProto.INT64),
            helper.make_node("Min", ["shift_length", "shift_last"], ["shift_index"]),
            helper.make_node("Gather", ["shift_table", "shift_index"], ["shift_gathered"]),
            helper.make_node("Reshape", ["shift_gathered", "shift_flat"], ["shift_term"]),
        ],
    )


def offsets_for(anomalous_lengths: set[int], longest: int) -> list[float]:
    """Offsets judging a normal case anomalous at exactly ``anomalous_lengths`` (up to
    ``longest`` events; longer cases keep the verdict of ``longest``)."""
    return [ABOVE if n in anomalous_lengths else 0.0 for n in range(longest + 1)]
