"""A scorer that passes ``check-model`` but fails inside onnxruntime on long cases.

The copy adds a Gather into a table of ``at_events`` zeros, indexed by each case's n_events and
added to the score: for a case with at least ``at_events`` events the index is out of bounds and
the whole session run fails, exactly like a model with a latent indexing bug. ``at_events=0``
gives a model that fails on every case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tests.score_term import with_score_term


def failing_copy(model: Path, out: Path, *, at_events: int) -> Path:
    return with_score_term(
        model,
        out,
        before="score_before_poison",
        term="poison_term",
        initializers=[
            numpy_helper.from_array(np.zeros(at_events, np.float32), "poison_table"),
            numpy_helper.from_array(np.array([-1], np.int64), "poison_flat"),
        ],
        nodes=[
            helper.make_node("Cast", ["n_events"], ["poison_index"], to=onnx.TensorProto.INT64),
            helper.make_node("Gather", ["poison_table", "poison_index"], ["poison_gathered"]),
            helper.make_node("Reshape", ["poison_gathered", "poison_flat"], ["poison_term"]),
        ],
    )
