"""The explanation outputs of the reference graph: per position, what it expected and how sure.

For a batch of B cases with a ring of K events, five outputs of shape [B, K + 1] (column K is
the end of a closed case), as ``casewatch.scoring.contract.ExplanationOutputs`` defines them:

    explain_surprise              the position's event score (the end's score in column K)
    explain_feature               0: the activity is to blame; j + 1: event attribute j
    explain_expected              the likeliest activity id, or value id of the blamed attribute
    explain_expected_probability  its probability in that context
    explain_observed_probability  the observed activity's (value's) probability there

The likeliest activity after each n-gram context comes from a table (``Expectations``); the
observed activity's probability follows from the event score, which is the scaled log ratio of
the two. For an attribute the mixture of "same value as the neighbour" and ``p(value |
activity)`` expects the neighbour's value when staying is likelier than the best new value, and
that best value otherwise; a first event takes whichever of its two judgements the score took.

The graph nodes read tensors that ``casewatch.offline.export`` names (the context windows
``ids<lag>``, ``transition_raw``, each attribute's mixture terms): this module extends that graph.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper

from casewatch.offline.expected import Expectations, likeliest_values
from casewatch.offline.ngram import AttributeModel, NGramTables
from casewatch.scoring.contract import ExplanationOutputs

EXPLANATION = ExplanationOutputs(
    surprise="explain_surprise",
    feature="explain_feature",
    expected="explain_expected",
    expected_probability="explain_expected_probability",
    observed_probability="explain_observed_probability",
)
# (expected id, its probability, observed probability) tensor names, each [B, K] or [B, 1].
Triple = tuple[str, str, str]


class GraphOps(Protocol):
    def const(self, name: str, value: npt.ArrayLike, dtype: type = np.int64) -> str: ...
    def op(self, kind: str, inputs: list[str], output: str, **attributes: Any) -> str: ...
    def flat_index(self, digits: list[str], base: str, name: str) -> str: ...


def explanation_outputs(g: GraphOps, tables: NGramTables, k: int) -> list[onnx.ValueInfoProto]:
    """Add the explanation nodes; returns the graph outputs to declare."""
    expectations = tables.expectations
    if expectations is None:
        raise ValueError("the tables carry no expectations to export")
    g.const("explain_zero_id", 0)
    g.const("explain_axis2", [2])
    g.const("transition_scale", tables.transition_scale, np.float32)
    terms = ["transition_scores_masked"] + [
        f"attr{j}_scores_masked" for j in range(len(tables.attributes))
    ]
    triples = [_control_flow(g, tables.order, expectations)]
    triples += [_attribute(g, j, attribute) for j, attribute in enumerate(tables.attributes)]
    feature, *events = _blamed(g, terms, triples)
    end = _end(g, expectations)
    end_feature = g.op("Mul", ["end_last_id", "explain_zero_id"], "explain_end_feature")
    columns = [
        ("event_scores", "end_score"),
        (feature, end_feature),
        *zip(events, end, strict=True),
    ]
    infos = []
    for (role, name), (per_event, at_end) in zip(EXPLANATION.outputs(), columns, strict=True):
        g.op("Concat", [per_event, at_end], name, axis=1)
        dtype = TensorProto.INT64 if role in ("feature", "expected") else TensorProto.FLOAT
        infos.append(helper.make_tensor_value_info(name, dtype, ["batch", k + 1]))
    return infos


def _observed(g: GraphOps, best: str, scaled_surprise: str, name: str) -> str:
    """p(observed) = max p * exp(-surprise), the surprise unscaled first."""
    surprise = g.op("Div", [scaled_surprise, "transition_scale"], f"{name}_surprise")
    ratio = g.op("Exp", [g.op("Neg", [surprise], f"{name}_negative")], f"{name}_ratio")
    return g.op("Mul", [best, ratio], name)


def _control_flow(g: GraphOps, order: int, expectations: Expectations) -> Triple:
    g.const("next_activity", expectations.next_activity)
    g.const("next_probability", expectations.next_probability, np.float32)
    if order > 1:
        context = g.flat_index(
            [f"ids{lag}" for lag in range(order - 1)], "vocabulary", "expected_context"
        )
    else:
        context = g.op("Mul", ["ids0", "explain_zero_id"], "expected_context")
    expected = g.op("Gather", ["next_activity", context], "next_expected", axis=0)
    best = g.op("Gather", ["next_probability", context], "next_best", axis=0)
    return expected, best, _observed(g, best, "transition_raw", "next_observed")


def _end(g: GraphOps, expectations: Expectations) -> Triple:
    g.const("after_last_activity", expectations.after_last_activity)
    g.const("after_last_probability", expectations.after_last_probability, np.float32)
    expected = g.op("Gather", ["after_last_activity", "end_last_id"], "end_expected", axis=0)
    best = g.op("Gather", ["after_last_probability", "end_last_id"], "end_best", axis=0)
    return expected, best, _observed(g, best, "end_raw", "end_observed")


def _attribute(g: GraphOps, j: int, attribute: AttributeModel) -> Triple:
    p = f"attr{j}"
    g.const(f"{p}_likeliest", likeliest_values(attribute.probabilities))
    likeliest = g.op("Gather", [f"{p}_likeliest", "sequence"], f"{p}_likeliest_here", axis=0)

    def against(other: str) -> Triple:
        q = f"{p}_{other}"
        stays = g.op("GreaterOrEqual", [f"{q}_p_keep", f"{q}_new_best"], f"{q}_stays")
        expected = g.op("Where", [stays, other, likeliest], f"{q}_expected")
        return expected, f"{q}_p_best", f"{q}_p_obs"

    after = against(f"{p}_previous")
    before = against(f"{p}_next")
    alone = (likeliest, f"{p}_qbest", f"{p}_q_observed")
    by_activity = g.op("LessOrEqual", [f"{p}_alone", f"{p}_{p}_next_surprise"], f"{p}_by_activity")
    out = []
    for role, later, single, paired in zip(
        ("expected", "best", "observed"), after, alone, before, strict=True
    ):
        first = g.op("Where", [by_activity, single, paired], f"{p}_first_{role}")
        out.append(g.op("Where", ["has_previous", later, first], f"{p}_explain_{role}"))
    return out[0], out[1], out[2]


def _blamed(g: GraphOps, terms: list[str], triples: list[Triple]) -> list[str]:
    """The blamed feature per position (the largest term; ties to the activity) and its triple."""
    if len(terms) == 1:
        feature = g.op("Mul", ["sequence", "explain_zero_id"], "explain_event_feature")
        return [feature, *triples[0]]

    def stacked(names: list[str], name: str) -> str:
        columns = [
            g.op("Unsqueeze", [n, "explain_axis2"], f"{name}_{i}") for i, n in enumerate(names)
        ]
        return g.op("Concat", columns, name, axis=2)

    index = g.op(
        "ArgMax", [stacked(terms, "explain_terms")], "explain_feature_index", axis=2, keepdims=1
    )
    out = [g.op("Squeeze", [index, "explain_axis2"], "explain_event_feature")]
    for i, role in enumerate(("expected", "best", "observed")):
        values = stacked([t[i] for t in triples], f"explain_{role}_stack")
        chosen = g.op("GatherElements", [values, index], f"explain_{role}_chosen", axis=2)
        out.append(g.op("Squeeze", [chosen, "explain_axis2"], f"explain_event_{role}"))
    return out
