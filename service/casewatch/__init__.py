"""casewatch: real-time process anomaly scoring.

Kafka events in, a case store in memory, an exported ONNX scorer, evaluations out.
"""

from casewatch.errors import (
    CasewatchError,
    ConfigError,
    ContractError,
    DeliveryFailure,
    InvalidEventError,
    KafkaFailure,
    LogFormatError,
    ModelError,
)
from casewatch.events import (
    Blame,
    ModelIdentity,
    Source,
    StreamingEvaluation,
    StreamingEvent,
    TransitionResidual,
)
from casewatch.offline.logs import LogColumns, Trace, read_log
from casewatch.scoring.contract import Contract
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer, load_scorer

__all__ = [
    "Blame",
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
