"""From events to evaluations: the model contract, the ONNX scorer, routing events into the
store, gathering features, isolating cases the model fails on, and building records."""

from casewatch.scoring.contract import Contract, read_contract
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.isolation import ScoringFailure
from casewatch.scoring.scorer import Scorer, load_scorer

__all__ = [
    "Contract",
    "Scorer",
    "ScoringFailure",
    "StreamingEvaluator",
    "load_scorer",
    "read_contract",
]
