"""Writing the reference scorer as an ONNX graph with its contract embedded.

Graph, for a batch of B cases with the last K activities (right-aligned, start padded):

    context ids  --(flat index)-->  Gather(transition table)  -> event scores   [B, K]
    activity x attribute ids ---->  Gather(attribute tables)  -> max with above
    closed flag  x  END transition of the last context        -> end score      [B, 1]
    ScatterElements(reduction=max) by activity id             -> residuals      [B, T]
    max over events and end                                   -> score          [B]

Positions whose context fell out of the ring (cases longer than K) are masked, so a long case
is judged on what the ring still holds rather than on a made-up start.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from casewatch._contract import (
    CategoricalAttribute,
    Contract,
    InputBinding,
    ScoreOutput,
    embed_contract,
)
from casewatch._ngram import NGramTables

OPSET = 18


def _const(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name=name)


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
    t = len(tables.activities)
    v = tables.vocabulary
    k = sequence_length
    pad = t + 1
    order = tables.order
    e = len(tables.attribute_names)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = [
        _const("transition_scores", tables.transition_scores.astype(np.float32).reshape(-1)),
        _const("pad_id", np.array(pad, dtype=np.int64)),
        _const("vocabulary", np.array(v, dtype=np.int64)),
        _const("positions", np.arange(k, dtype=np.int64).reshape(1, k)),
        _const("min_full_context", np.array(order - 1, dtype=np.int64)),
        _const("ring_size", np.array(float(k), dtype=np.float32)),
        _const("one", np.array(1, dtype=np.int64)),
        _const("axis1", np.array([1], dtype=np.int64)),
        _const("scatter_width", np.array([v], dtype=np.int64)),
        _const("residual_starts", np.array([0], dtype=np.int64)),
        _const("residual_ends", np.array([t], dtype=np.int64)),
        _const("last_start", np.array([k - 1], dtype=np.int64)),
        _const("last_end", np.array([k], dtype=np.int64)),
        _const("end_id", np.array(pad, dtype=np.int64)),
    ]
    add = nodes.append
    # Context: pad order-1 start ids on the left, then combine the ids into one flat index.
    add(helper.make_node("Pad", ["sequence", "context_pads", "pad_id"], ["padded"]))
    inits.append(_const("context_pads", np.array([0, order - 1, 0, 0], dtype=np.int64)))
    flat = None
    for lag in range(order):
        start, stop = lag, lag + k
        inits.append(_const(f"lag{lag}_start", np.array([start], dtype=np.int64)))
        inits.append(_const(f"lag{lag}_stop", np.array([stop], dtype=np.int64)))
        add(
            helper.make_node(
                "Slice", ["padded", f"lag{lag}_start", f"lag{lag}_stop", "axis1"], [f"ids{lag}"]
            )
        )
        if flat is None:
            flat = f"ids{lag}"
        else:
            add(helper.make_node("Mul", [flat, "vocabulary"], [f"scaled{lag}"]))
            add(helper.make_node("Add", [f"scaled{lag}", f"ids{lag}"], [f"flat{lag}"]))
            flat = f"flat{lag}"
    assert flat is not None
    add(
        helper.make_node("Gather", ["transition_scores", flat], ["transition_event_scores"], axis=0)
    )
    # A position counts when it holds an event and its whole context is known: either the ring
    # still holds the case from its start, or the position is far enough from the ring's edge.
    add(helper.make_node("Equal", ["sequence", "pad_id"], ["is_pad"]))
    add(helper.make_node("Not", ["is_pad"], ["is_event"]))
    add(helper.make_node("GreaterOrEqual", ["positions", "min_full_context"], ["context_in_ring"]))
    add(helper.make_node("LessOrEqual", ["n_events", "ring_size"], ["case_in_ring"]))
    add(helper.make_node("Or", ["context_in_ring", "case_in_ring"], ["context_known"]))
    add(helper.make_node("And", ["is_event", "context_known"], ["valid"]))
    add(helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT))
    add(helper.make_node("Cast", ["is_event"], ["event_f"], to=TensorProto.FLOAT))
    add(helper.make_node("Mul", ["transition_event_scores", "valid_f"], ["masked_transition"]))
    event_terms = ["masked_transition"]
    for j in range(e):
        width = len(tables.attribute_values[j]) + 2
        inits.append(
            _const(f"attr{j}_scores", tables.attribute_scores[j].astype(np.float32).reshape(-1))
        )
        inits.append(_const(f"attr{j}_width", np.array(width, dtype=np.int64)))
        inits.append(_const(f"attr{j}_index", np.array(j, dtype=np.int64)))
        add(
            helper.make_node(
                "Gather", ["event_attributes", f"attr{j}_index"], [f"attr{j}_ids"], axis=2
            )
        )
        add(helper.make_node("Mul", ["sequence", f"attr{j}_width"], [f"attr{j}_row"]))
        add(helper.make_node("Add", [f"attr{j}_row", f"attr{j}_ids"], [f"attr{j}_flat"]))
        add(
            helper.make_node(
                "Gather", [f"attr{j}_scores", f"attr{j}_flat"], [f"attr{j}_raw"], axis=0
            )
        )
        add(helper.make_node("Mul", [f"attr{j}_raw", "event_f"], [f"attr{j}_event_scores"]))
        event_terms.append(f"attr{j}_event_scores")
    if len(event_terms) > 1:
        add(helper.make_node("Max", event_terms, ["event_scores"]))
    else:
        add(helper.make_node("Identity", event_terms, ["event_scores"]))
    # End of a closed case: the transition from the last context to END.
    end_flat = None
    for lag in range(1, order):
        inits.append(_const(f"end{lag}_start", np.array([k + lag - 1], dtype=np.int64)))
        inits.append(_const(f"end{lag}_stop", np.array([k + lag], dtype=np.int64)))
        add(
            helper.make_node(
                "Slice", ["padded", f"end{lag}_start", f"end{lag}_stop", "axis1"], [f"end_ids{lag}"]
            )
        )
        if end_flat is None:
            end_flat = f"end_ids{lag}"
        else:
            add(helper.make_node("Mul", [end_flat, "vocabulary"], [f"end_scaled{lag}"]))
            add(helper.make_node("Add", [f"end_scaled{lag}", f"end_ids{lag}"], [f"end_flat{lag}"]))
            end_flat = f"end_flat{lag}"
    if end_flat is None:
        add(helper.make_node("Identity", ["end_id"], ["end_index"]))
    else:
        add(helper.make_node("Mul", [end_flat, "vocabulary"], ["end_scaled"]))
        add(helper.make_node("Add", ["end_scaled", "end_id"], ["end_index"]))
    add(helper.make_node("Gather", ["transition_scores", "end_index"], ["end_raw"], axis=0))
    add(helper.make_node("Mul", ["end_raw", "closed"], ["end_score"]))
    # Residuals: the largest event score per activity; END is charged to the last activity.
    add(helper.make_node("Shape", ["sequence"], ["batch_and_ring"]))
    add(helper.make_node("Slice", ["batch_and_ring", "residual_starts", "one_vec"], ["batch_dim"]))
    inits.append(_const("one_vec", np.array([1], dtype=np.int64)))
    add(helper.make_node("Concat", ["batch_dim", "scatter_width"], ["scatter_shape"], axis=0))
    add(
        helper.make_node(
            "ConstantOfShape",
            ["scatter_shape"],
            ["zeros"],
            value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
        )
    )
    add(
        helper.make_node(
            "ScatterElements",
            ["zeros", "sequence", "event_scores"],
            ["scattered"],
            axis=1,
            reduction="max",
        )
    )
    add(helper.make_node("Slice", ["sequence", "last_start", "last_end", "axis1"], ["last_id"]))
    add(
        helper.make_node(
            "ScatterElements",
            ["scattered", "last_id", "end_score"],
            ["with_end"],
            axis=1,
            reduction="max",
        )
    )
    add(
        helper.make_node(
            "Slice", ["with_end", "residual_starts", "residual_ends", "axis1"], ["residuals"]
        )
    )
    add(helper.make_node("ReduceMax", ["event_scores", "axis1"], ["event_max"], keepdims=1))
    add(helper.make_node("Max", ["event_max", "end_score"], ["score_column"]))
    add(helper.make_node("Squeeze", ["score_column", "axis1"], ["score"]))

    inputs = [
        helper.make_tensor_value_info("sequence", TensorProto.INT64, ["batch", k]),
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
            helper.make_tensor_value_info("event_attributes", TensorProto.INT64, ["batch", k, e])
        )
        bindings.append(InputBinding(name="event_attributes", features=["event_attributes"]))
    outputs = [
        helper.make_tensor_value_info("residuals", TensorProto.FLOAT, ["batch", t]),
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]),
    ]
    graph = helper.make_graph(nodes, f"casewatch_{name}", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="casewatch"
    )
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    contract = Contract(
        name=name,
        version=version,
        activities=tables.activities,
        sequence_length=k,
        event_attributes=[
            CategoricalAttribute(name=n, values=vals)
            for n, vals in zip(tables.attribute_names, tables.attribute_values, strict=True)
        ],
        inputs=bindings,
        residuals="residuals",
        score=ScoreOutput(name="score"),
        threshold=threshold,
        threshold_method=threshold_method,
        description=description,
    )
    embed_contract(model, contract)
    return model
