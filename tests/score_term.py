"""Copies of a scorer whose score has a term added, computed from the case's ``n_events``."""

from __future__ import annotations

from pathlib import Path

import onnx


def with_score_term(
    model: Path,
    out: Path,
    *,
    before: str,
    term: str,
    initializers: list[onnx.TensorProto],
    nodes: list[onnx.NodeProto],
) -> Path:
    """Write ``model`` with ``score = <its score, renamed before> + term``; ``nodes`` compute
    ``term`` (shape [B]) from ``n_events`` and ``initializers``."""
    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    if "n_events" not in {i.name for i in graph.input}:
        raise ValueError(f"{model} has no n_events input")
    score = next(o.name for o in graph.output if o.name == "score")
    producer = next(n for n in graph.node if score in n.output)
    producer.output[list(producer.output).index(score)] = before
    graph.initializer.extend(initializers)
    graph.node.extend([*nodes, onnx.helper.make_node("Add", [before, term], [score])])
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(out))
    return out
