"""The exceptions casewatch raises.

::

    CasewatchError
    ├── ConfigError          invalid settings; the daemon exits with code 2
    ├── ModelError           a scorer that cannot be loaded or run
    │   └── ContractError    the contract disagrees with the ONNX graph
    ├── LogFormatError       an event log that cannot be read
    ├── InvalidEventError    one input message that cannot be decoded or validated
    └── KafkaFailure         a broker-side failure the loop cannot recover from
        └── DeliveryFailure  an output record that could not be delivered

Library errors (onnxruntime, confluent-kafka, pydantic) are converted where they enter casewatch,
so a user sees one line naming the cause, never a raw traceback.
"""

from __future__ import annotations


class CasewatchError(Exception):
    """Base class of every error casewatch raises on purpose."""


class ConfigError(CasewatchError):
    """The settings are invalid."""


class ModelError(CasewatchError):
    """The scorer cannot be loaded or run."""


class ContractError(ModelError):
    """The model contract is missing, malformed, or disagrees with the ONNX graph."""


class LogFormatError(CasewatchError):
    """An event log file cannot be read."""


class InvalidEventError(CasewatchError):
    """One input message cannot be decoded or validated.

    ``reason`` is a short machine-readable code (used as a metric label and a DLQ header);
    the message is the human-readable detail.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class KafkaFailure(CasewatchError):
    """A Kafka error the loop cannot recover from."""


class DeliveryFailure(KafkaFailure):
    """An output record could not be delivered."""
