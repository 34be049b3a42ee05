"""casewatch: real-time process anomaly scoring.

Kafka events in, a case store in memory, an exported ONNX scorer, evaluations out.
"""

from casewatch._contract import Contract
from casewatch._errors import (
    CasewatchError,
    ConfigError,
    ContractError,
    DeliveryFailure,
    InvalidEventError,
    KafkaFailure,
    LogFormatError,
    ModelError,
)
from casewatch._evaluator import StreamingEvaluator
from casewatch._events import (
    ModelIdentity,
    Source,
    StreamingEvaluation,
    StreamingEvent,
    TransitionResidual,
)
from casewatch._logs import LogColumns, Trace, read_log
from casewatch._scorer import Scorer, load_scorer

__all__ = [
    "CasewatchError",
    "ConfigError",
    "Contract",
    "ContractError",
    "DeliveryFailure",
    "InvalidEventError",
    "KafkaFailure",
    "LogColumns",
    "LogFormatError",
    "ModelError",
    "ModelIdentity",
    "Scorer",
    "Source",
    "StreamingEvaluation",
    "StreamingEvaluator",
    "StreamingEvent",
    "Trace",
    "TransitionResidual",
    "load_scorer",
    "read_log",
]
