"""The model contract: how an ONNX scorer tells casewatch what it reads and what it returns.

The contract is JSON stored in the ONNX file's ``metadata_props`` under ``casewatch.contract``
(or in a separate file for models exported elsewhere). It is checked against the graph's real
inputs and outputs at load time, so a mismatch stops start-up with one line instead of failing
on the first batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from casewatch.errors import ContractError
from casewatch.scoring.contract_incremental import Incremental, validate_incremental

METADATA_KEY = "casewatch.contract"

Feature = Literal[
    "activity_counts",
    "n_events",
    "unknown_activities",
    "elapsed_seconds",
    "closed",
    "case_numeric",
    "case_categorical",
    "sequence",
    "event_attributes",
]
# Integer features carry ids and have their own shapes, so they cannot be concatenated.
INTEGER_FEATURES: frozenset[str] = frozenset({"sequence", "event_attributes", "case_categorical"})

_FLOAT = onnx.TensorProto.FLOAT
_INT64 = onnx.TensorProto.INT64


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CategoricalAttribute(_Frozen):
    """A per-event categorical attribute; id ``len(values)`` = unknown, ``+1`` = missing/padding."""

    name: str
    values: list[str]


class CaseAttribute(_Frozen):
    """A case-level attribute, merged latest-event-wins."""

    name: str
    kind: Literal["numeric", "categorical"]
    values: list[str] = []


class InputBinding(_Frozen):
    """One graph input; several float features are concatenated along axis 1 in the given order."""

    name: str
    features: list[Feature] = Field(min_length=1)


class ScoreOutput(_Frozen):
    name: str
    higher_is_anomalous: bool = True


class ExplanationOutputs(_Frozen):
    """Optional outputs that say, per event, what the model expected in its place.

    Each names a graph output of shape ``[B, K + 1]``: columns ``0..K-1`` are the positions of
    ``sequence`` (right-aligned like it), column ``K`` is the end of a closed case. ``feature`` is
    int64: 0 blames the activity (control flow, and always for the end), ``j >= 1`` the event
    attribute ``event_attributes[j - 1]``. ``expected`` is int64: an activity id (``T`` unknown,
    ``T + 1`` the end of the case) or, for an attribute, a value id (``len(values)`` unknown,
    ``+1`` missing). ``surprise``, ``expected_probability`` and ``observed_probability`` are
    float32: how much the position adds to the score (0 where nothing is odd), and the model's
    probabilities of the expected and of the observed activity or value there.
    """

    surprise: str
    feature: str
    expected: str
    expected_probability: str
    observed_probability: str

    def outputs(self) -> list[tuple[str, str]]:
        """(role, graph output name) in the order the scorer fetches them."""
        return [(role, getattr(self, role)) for role in EXPLANATION_ROLES]


EXPLANATION_ROLES = ("surprise", "feature", "expected", "expected_probability",
                     "observed_probability")  # fmt: skip
_EXPLANATION_INTEGER_ROLES = frozenset({"feature", "expected"})


class Contract(_Frozen):
    """What a scorer reads (``inputs``) and returns (``residuals``, ``score``, and optionally
    ``explanation``)."""

    schema_version: Literal[1] = 1
    name: str
    version: str
    activities: list[str] = Field(min_length=1)
    sequence_length: int = Field(default=32, ge=1, le=4096)
    event_attributes: list[CategoricalAttribute] = []
    case_attributes: list[CaseAttribute] = []
    inputs: list[InputBinding] = Field(min_length=1)
    residuals: str | None = None
    score: ScoreOutput
    threshold: float
    threshold_method: str = ""
    # The share of normal cases the threshold was chosen to flag, when the method takes one.
    false_alarm_rate: float | None = Field(default=None, gt=0, lt=1)
    # Share of the training cases above the threshold: the alert volume to expect in production.
    expected_flagged_share: float | None = Field(default=None, ge=0, le=1)
    description: str = ""
    explanation: ExplanationOutputs | None = None
    # The model can be scored from a window of each case's newest events (see
    # ``casewatch.scoring.contract_incremental``).
    incremental: Incremental | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        if len(set(self.activities)) != len(self.activities):
            raise ValueError("activities must be unique")
        for binding in self.inputs:
            integer = [f for f in binding.features if f in INTEGER_FEATURES]
            if integer and len(binding.features) > 1:
                raise ValueError(f"input {binding.name!r}: {integer[0]} cannot be concatenated")
        return self

    @property
    def features(self) -> frozenset[str]:
        return frozenset(f for binding in self.inputs for f in binding.features)

    @property
    def numeric_case_attributes(self) -> list[str]:
        return [a.name for a in self.case_attributes if a.kind == "numeric"]

    @property
    def categorical_case_attributes(self) -> list[CaseAttribute]:
        return [a for a in self.case_attributes if a.kind == "categorical"]

    def feature_width(self, feature: str) -> int:
        """Width of a float feature along axis 1."""
        widths = {
            "activity_counts": len(self.activities),
            "case_numeric": len(self.numeric_case_attributes),
            "case_categorical": len(self.categorical_case_attributes),
            "sequence": self.sequence_length,
        }
        return widths.get(feature, 1)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def parse_contract(text: str, *, origin: str) -> Contract:
    try:
        return Contract.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "contract"
        raise ContractError(f"{origin}: invalid contract at {where}: {first['msg']}") from None


def read_contract(model: onnx.ModelProto, *, origin: str, override: Path | None = None) -> Contract:
    """The contract of ``model``: the override file when given, else the embedded metadata."""
    if override is not None:
        try:
            text = override.read_text(encoding="utf-8")
        except OSError as exc:
            raise ContractError(f"{override}: cannot read contract file: {exc.strerror}") from None
        return parse_contract(text, origin=str(override))
    embedded = {p.key: p.value for p in model.metadata_props}.get(METADATA_KEY)
    if embedded is None:
        raise ContractError(
            f"{origin}: no '{METADATA_KEY}' metadata; give a contract file for models "
            "exported elsewhere"
        )
    return parse_contract(embedded, origin=origin)


def embed_contract(model: onnx.ModelProto, contract: Contract) -> None:
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = contract.to_json()


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def _expect(
    info: onnx.ValueInfoProto, *, origin: str, dtype: int, dims: list[int | None], role: str
) -> None:
    actual_type = info.type.tensor_type.elem_type
    if actual_type != dtype:
        raise ContractError(
            f"{origin}: {role} {info.name!r} is {onnx.TensorProto.DataType.Name(actual_type)}, "
            f"contract needs {onnx.TensorProto.DataType.Name(dtype)}"
        )
    actual = _dims(info)
    if len(actual) != len(dims):
        raise ContractError(
            f"{origin}: {role} {info.name!r} has rank {len(actual)}, contract needs {len(dims)}"
        )
    for axis, (have, want) in enumerate(zip(actual, dims, strict=True)):
        if have and want and have != want:
            raise ContractError(
                f"{origin}: {role} {info.name!r} axis {axis} is {have}, contract needs {want}"
            )


def _input_dims(contract: Contract, binding: InputBinding) -> tuple[int, list[int | None]]:
    feature = binding.features[0]
    k = contract.sequence_length
    if feature == "sequence":
        return _INT64, [None, k]
    if feature == "event_attributes":
        return _INT64, [None, k, len(contract.event_attributes)]
    if feature == "case_categorical":
        return _INT64, [None, contract.feature_width(feature)]
    return _FLOAT, [None, sum(contract.feature_width(f) for f in binding.features)]


def validate_against_graph(contract: Contract, graph: onnx.GraphProto, *, origin: str) -> None:
    """Raise ContractError naming the first disagreement between contract and graph."""
    initializers = {i.name for i in graph.initializer}
    graph_inputs = {i.name: i for i in graph.input if i.name not in initializers}
    graph_outputs = {o.name: o for o in graph.output}
    bound = {b.name for b in contract.inputs}
    for name in graph_inputs.keys() - bound:
        raise ContractError(f"{origin}: graph input {name!r} is not bound by the contract")
    for binding in contract.inputs:
        if binding.name not in graph_inputs:
            raise ContractError(f"{origin}: contract input {binding.name!r} is not in the graph")
        dtype, dims = _input_dims(contract, binding)
        _expect(graph_inputs[binding.name], origin=origin, dtype=dtype, dims=dims, role="input")
    if contract.residuals is not None:
        if contract.residuals not in graph_outputs:
            raise ContractError(f"{origin}: residuals output {contract.residuals!r} not in graph")
        _expect(
            graph_outputs[contract.residuals],
            origin=origin,
            dtype=_FLOAT,
            dims=[None, len(contract.activities)],
            role="output",
        )
    score = graph_outputs.get(contract.score.name)
    if score is None:
        raise ContractError(f"{origin}: score output {contract.score.name!r} not in graph")
    rank = len(_dims(score))
    _expect(
        score, origin=origin, dtype=_FLOAT, dims=[None] if rank == 1 else [None, 1], role="output"
    )
    if contract.explanation is not None:
        _validate_explanation(contract, contract.explanation, graph_outputs, origin=origin)
    inputs = {b.name: b.features for b in contract.inputs}
    validate_incremental(contract.incremental, graph, contract.sequence_length, inputs, origin)


def _validate_explanation(
    contract: Contract,
    explanation: ExplanationOutputs,
    graph_outputs: dict[str, onnx.ValueInfoProto],
    *,
    origin: str,
) -> None:
    """Every explanation output exists with its dtype and shape [B, K + 1]; the inputs it is
    read against (the sequence, and the event attributes it can blame) are bound."""
    if "sequence" not in contract.features:
        raise ContractError(f"{origin}: explanation outputs need the 'sequence' feature as input")
    if contract.event_attributes and "event_attributes" not in contract.features:
        raise ContractError(
            f"{origin}: explanation outputs need the 'event_attributes' feature as input"
        )
    dims: list[int | None] = [None, contract.sequence_length + 1]
    for role, name in explanation.outputs():
        if name not in graph_outputs:
            raise ContractError(f"{origin}: explanation {role} output {name!r} not in graph")
        dtype = _INT64 if role in _EXPLANATION_INTEGER_ROLES else _FLOAT
        _expect(graph_outputs[name], origin=origin, dtype=dtype, dims=dims, role="output")


def contract_json(path: str | Path) -> str:
    """Pretty JSON of a model's embedded contract, for ``check-model``."""
    model = onnx.load(str(path), load_external_data=False)
    contract = read_contract(model, origin=str(path))
    return json.dumps(json.loads(contract.to_json()), indent=2, ensure_ascii=False)
