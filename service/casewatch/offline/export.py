"""Writing the reference scorer as an ONNX graph with its contract embedded.

Graph, for a batch of B cases with the last K activities (right-aligned, start padded):

    context ids  --(flat index)-->  Gather(transition table)  -> event scores   [B, K]
    activity, attribute ids, previous event's ids -> mixture surprise, max with above
    closed flag  x  END after the last activity               -> end score      [B, 1]
    ScatterElements(reduction=max) by activity id             -> residuals      [B, T]
    max over events and end                                   -> score          [B]

Positions whose context fell out of the ring (cases longer than K) are masked, so a long case
is judged on what the ring still holds rather than on a made-up start.

The ring axis is dynamic and the masking reads the ring's width from the input, so the same
graph scores the whole ring or only a case's newest events (``window`` below): a window of
``order`` events gives its newest position exactly the value the whole ring gives it, which is
what incremental scoring (``casewatch.scoring.incremental``) relies on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from casewatch.offline.export_expected import EXPLANATION, explanation_outputs
from casewatch.offline.ngram import AttributeModel, NGramTables
from casewatch.scoring.contract import (
    CategoricalAttribute,
    Contract,
    InputBinding,
    ScoreOutput,
    embed_contract,
)
from casewatch.scoring.contract_incremental import Incremental

OPSET = 18
IR_VERSION = 9
# Slice bound meaning "to the end of the axis", whatever its length.
END = np.iinfo(np.int64).max


class _GraphBuilder:
    """Collects nodes and initializers; every helper returns the name of the tensor it made."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: npt.ArrayLike, dtype: type = np.int64) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    def columns(self, source: str, start: int, stop: int, name: str, axis: int = 1) -> str:
        """``source[:, start:stop]`` (or ``source[start:stop]`` with axis 0); negative bounds
        count from the end, ``END`` is the end."""
        starts = self.const(f"{name}_start", [start])
        stops = self.const(f"{name}_stop", [stop])
        axes = self.const(f"{name}_axis", [axis])
        return self.op("Slice", [source, starts, stops, axes], name)

    def flat_index(self, digits: list[str], base: str, name: str) -> str:
        """Mixed-radix index ((d0 * base + d1) * base + d2 ...) of id tensors."""
        flat = digits[0]
        for position, digit in enumerate(digits[1:], start=1):
            scaled = self.op("Mul", [flat, base], f"{name}_scaled{position}")
            flat = self.op("Add", [scaled, digit], f"{name}_{position}")
        return flat


def _ring(g: _GraphBuilder) -> None:
    """The input's ring width as ``ring_size`` and its positions ``0..width-1`` as
    ``positions`` [1, width], read from the sequence's shape."""
    shape = g.op("Shape", ["sequence"], "ring_shape")
    width = g.columns(shape, 1, 2, "ring_width", axis=0)
    g.op("Cast", [width], "ring_size", to=TensorProto.FLOAT)
    scalar = g.op("Squeeze", [width], "ring_width_scalar")
    arange = g.op("Range", [g.const("range_start", 0), scalar, g.const("range_step", 1)],
                  "ring_positions")  # fmt: skip
    g.op("Unsqueeze", [arange, g.const("axis0", [0])], "positions")


def _event_scores(g: _GraphBuilder, tables: NGramTables) -> str:
    order = tables.order
    g.op("Pad", ["sequence", g.const("context_pads", [0, order - 1, 0, 0]), "pad_id"], "padded")
    # Lag ``lag`` of every position: the padded ring without its first ``lag`` and last
    # ``order - 1 - lag`` columns.
    windows = [
        g.columns("padded", lag, lag - (order - 1) if lag < order - 1 else END, f"ids{lag}")
        for lag in range(order)
    ]
    flat = g.flat_index(windows, "vocabulary", "context")
    transition = g.op("Gather", ["transition_scores", flat], "transition_raw", axis=0)
    # A position counts when it holds an event and its whole context is known: either the ring
    # still holds the case from its start, or the position is far enough from the ring's edge.
    g.op("Not", [g.op("Equal", ["sequence", "pad_id"], "is_pad")], "is_event")
    g.const("min_full_context", order - 1)
    g.op("GreaterOrEqual", ["positions", "min_full_context"], "context_in_ring")
    g.op("LessOrEqual", ["n_events", "ring_size"], "case_in_ring")
    g.op("Or", ["context_in_ring", "case_in_ring"], "context_known")
    g.op("And", ["is_event", "context_known"], "valid")
    g.op("Cast", ["valid"], "valid_f", to=TensorProto.FLOAT)
    terms = [g.op("Mul", [transition, "valid_f"], "transition_scores_masked")]
    if tables.attributes:
        _neighbours(g)
    for j, attribute in enumerate(tables.attributes):
        terms.append(_attribute_scores(g, j, attribute))
    return g.op("Max" if len(terms) > 1 else "Identity", terms, "event_scores")


def _neighbours(g: _GraphBuilder) -> None:
    """Which positions have the case's previous and next event in the ring, and the next
    activity. A case longer than the ring has lost the previous event of its oldest position:
    that position is left unscored rather than judged as a case start."""
    g.op("Pad", ["sequence", g.const("shift_pads", [0, 1, 0, 0]), "pad_id"], "shifted")
    previous = g.columns("shifted", 0, -1, "previous_ids")
    g.op("Not", [g.op("Equal", [previous, "pad_id"], "previous_is_pad")], "has_previous")
    g.op("Pad", ["sequence", g.const("unshift_pads", [0, 0, 0, 1]), "pad_id"], "unshifted")
    following = g.columns("unshifted", 1, END, "next_ids")
    g.op("Not", [g.op("Equal", [following, "pad_id"], "next_is_pad")], "has_next")
    g.op("Or", ["has_previous", "case_in_ring"], "previous_known")
    g.op("And", ["is_event", "previous_known"], "attribute_valid")
    g.op("Cast", ["attribute_valid"], "attribute_valid_f", to=TensorProto.FLOAT)


def _against(g: _GraphBuilder, p: str, stay: str, ids: str, other: str) -> str:
    """log max_v p(v | ctx) - log p(observed | ctx), p = stay * [v = other] + (1 - stay) * q."""
    q_observed = f"{p}_q_observed"
    at_other = g.op("Add", [f"{p}_row", other], f"{p}_{other}_at")
    q_other = g.op("Gather", [f"{p}_q", at_other], f"{p}_{other}_q", axis=0)
    change = g.op("Sub", ["one", stay], f"{p}_{other}_change")
    same = g.op("Cast", [g.op("Equal", [ids, other], f"{p}_{other}_same_b")], f"{p}_{other}_same",
                to=TensorProto.FLOAT)  # fmt: skip
    kept = g.op("Mul", [stay, same], f"{p}_{other}_kept")
    new = g.op("Mul", [change, q_observed], f"{p}_{other}_new")
    observed = g.op("Add", [kept, new], f"{p}_{other}_p_obs")
    keep = g.op(
        "Add", [stay, g.op("Mul", [change, q_other], f"{p}_{other}_q_keep")], f"{p}_{other}_p_keep"
    )
    other_best = g.op("Mul", [change, f"{p}_qbest"], f"{p}_{other}_new_best")
    likeliest = g.op("Max", [keep, other_best], f"{p}_{other}_p_best")
    log_best = g.op("Log", [likeliest], f"{p}_{other}_log_best")
    log_observed = g.op("Log", [observed], f"{p}_{other}_log_obs")
    return g.op("Sub", [log_best, log_observed], f"{p}_{other}_surprise")


def _attribute_scores(g: _GraphBuilder, j: int, attribute: AttributeModel) -> str:
    """The event's value against the previous event; a first event against its activity and the
    next event, counting only when both find it odd; a lone first event is not judged."""
    p = f"attr{j}"
    g.const(f"{p}_q", attribute.probabilities.reshape(-1), np.float32)
    g.const(f"{p}_best", attribute.best, np.float32)
    g.const(f"{p}_stay", attribute.stay, np.float32)
    ids = g.op("Gather", ["event_attributes", g.const(p, j)], f"{p}_ids", axis=2)
    missing = g.const(f"{p}_missing", len(attribute.values) + 1)
    g.op("Pad", [ids, g.const(f"{p}_shift", [0, 1, 0, 0]), missing], f"{p}_shifted")
    g.op("Pad", [ids, g.const(f"{p}_unshift", [0, 0, 0, 1]), missing], f"{p}_unshifted")
    previous = g.columns(f"{p}_shifted", 0, -1, f"{p}_previous")
    following = g.columns(f"{p}_unshifted", 1, END, f"{p}_next")
    g.op("Mul", ["sequence", g.const(f"{p}_width", len(attribute.values) + 2)], f"{p}_row")
    at = g.op("Add", [f"{p}_row", ids], f"{p}_at")
    q_observed = g.op("Gather", [f"{p}_q", at], f"{p}_q_observed", axis=0)
    best = g.op("Gather", [f"{p}_best", "sequence"], f"{p}_qbest", axis=0)
    stay = g.op("Gather", [f"{p}_stay", "sequence"], f"{p}_stay_here", axis=0)
    stay_next = g.op("Gather", [f"{p}_stay", "next_ids"], f"{p}_stay_next", axis=0)
    after_previous = _against(g, p, stay, ids, previous)
    before_next = _against(g, p, stay_next, ids, following)
    alone = g.op("Sub", [g.op("Log", [best], f"{p}_log_qbest"),
                         g.op("Log", [q_observed], f"{p}_log_q")], f"{p}_alone")  # fmt: skip
    both = g.op("Min", [alone, before_next], f"{p}_first_both")
    first = g.op("Where", ["has_next", both, "zero_score"], f"{p}_first")
    surprise = g.op("Where", ["has_previous", after_previous, first], f"{p}_surprise")
    scale = g.const(f"{p}_scale", attribute.scale, np.float32)
    scaled = g.op("Mul", [surprise, scale], f"{p}_scaled")
    return g.op("Mul", [scaled, "attribute_valid_f"], f"{p}_scores_masked")


def _end_score(g: _GraphBuilder, tables: NGramTables) -> str:
    """END after the case's last activity, for closed cases only."""
    g.const("end_scores", tables.end_scores, np.float32)
    last = g.columns("sequence", -1, END, "end_last_id")
    raw = g.op("Gather", ["end_scores", last], "end_raw", axis=0)
    return g.op("Mul", [raw, "closed"], "end_score")


def _residuals_and_score(
    g: _GraphBuilder, event_scores: str, end_score: str, v: int, t: int
) -> None:
    batch = g.columns(g.op("Shape", ["sequence"], "sequence_shape"), 0, 1, "batch_dim", axis=0)
    shape = g.op("Concat", [batch, g.const("scatter_width", [v])], "scatter_shape", axis=0)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    zeros = g.op("ConstantOfShape", [shape], "zeros", value=zero)
    # Largest event score per activity id; END is charged to the last activity.
    by_activity = g.op(
        "ScatterElements", [zeros, "sequence", event_scores], "by_activity", axis=1, reduction="max"
    )
    last = g.columns("sequence", -1, END, "last_id")
    with_end = g.op(
        "ScatterElements", [by_activity, last, end_score], "with_end", axis=1, reduction="max"
    )
    g.columns(with_end, 0, t, "residuals")
    event_max = g.op("ReduceMax", [event_scores, "axis1"], "event_max", keepdims=1)
    g.op("Squeeze", [g.op("Max", [event_max, end_score], "score_column"), "axis1"], "score")


def _inputs(e: int) -> tuple[list[onnx.ValueInfoProto], list[InputBinding]]:
    """Graph inputs and their contract bindings for ``e`` attributes; the ring's width is
    dynamic (the contract's ``sequence_length`` for the whole ring, less for a window)."""
    inputs = [
        helper.make_tensor_value_info("sequence", TensorProto.INT64, ["batch", "ring"]),
        helper.make_tensor_value_info("n_events", TensorProto.FLOAT, ["batch", 1]),
        helper.make_tensor_value_info("closed", TensorProto.FLOAT, ["batch", 1]),
    ]
    bindings = [
        InputBinding(name="sequence", features=["sequence"]),
        InputBinding(name="n_events", features=["n_events"]),
        InputBinding(name="closed", features=["closed"]),
    ]
    if e:
        inputs.append(
            helper.make_tensor_value_info(
                "event_attributes", TensorProto.INT64, ["batch", "ring", e]
            )
        )
        bindings.append(InputBinding(name="event_attributes", features=["event_attributes"]))
    return inputs, bindings


def build_model(
    tables: NGramTables,
    *,
    name: str,
    version: str,
    sequence_length: int,
    threshold: float,
    threshold_method: str,
    description: str = "",
) -> onnx.ModelProto:
    t, v, k = len(tables.activities), tables.vocabulary, sequence_length
    e = len(tables.attributes)
    g = _GraphBuilder()
    g.const("transition_scores", tables.transition_scores.reshape(-1), np.float32)
    g.const("pad_id", t + 1)
    g.const("one", 1.0, np.float32)
    g.const("zero_score", 0.0, np.float32)
    g.const("vocabulary", v)
    g.const("axis1", [1])
    _ring(g)
    events = _event_scores(g, tables)
    _residuals_and_score(g, events, _end_score(g, tables), v, t)

    inputs, bindings = _inputs(e)
    outputs = [
        helper.make_tensor_value_info("residuals", TensorProto.FLOAT, ["batch", t]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
    ]
    explained = tables.expectations is not None
    if explained:
        outputs += explanation_outputs(g, tables, k)
    graph = helper.make_graph(g.nodes, f"casewatch_{name}", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="casewatch"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    contract = Contract(
        name=name,
        version=version,
        activities=tables.activities,
        sequence_length=k,
        event_attributes=[
            CategoricalAttribute(name=a.name, values=a.values) for a in tables.attributes
        ],
        inputs=bindings,
        residuals="residuals",
        score=ScoreOutput(name="score"),
        threshold=threshold,
        threshold_method=threshold_method,
        description=description,
        explanation=EXPLANATION if explained else None,
        # Each event's score depends on the events of its n-gram context and on the previous
        # event only, so the last ``order`` events (two at least) give the newest event its
        # exact value.
        incremental=Incremental(window=min(max(tables.order, 2), k)),
    )
    embed_contract(model, contract)
    return model
