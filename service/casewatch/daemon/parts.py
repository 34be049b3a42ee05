"""What the loop runs with: its options, its parts and the stop request they share.

``casewatch.daemon.build`` makes them from the settings; ``casewatch.daemon.loop`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from casewatch.daemon.backpressure import BackPressure
from casewatch.daemon.checkpoint import Checkpoint
from casewatch.daemon.intake import Intake
from casewatch.daemon.model_reload import ModelReloader
from casewatch.daemon.rebalance import Rebalance
from casewatch.events import ModelIdentity, StreamingEvaluation, StreamingEvent
from casewatch.kafka.producer import OutputProducer
from casewatch.scoring.alerts import CaseAlert
from casewatch.scoring.isolation import ScoringFailure
from casewatch.scoring.routing import RoutingCounts
from casewatch.scoring.scored import ScoredBatch
from casewatch.scoring.scorer import Scorer
from casewatch.state.changes import StateChanges
from casewatch.state.restore import Restorer
from casewatch.telemetry.loop_metrics import LoopMetrics
from casewatch.telemetry.metrics import Telemetry


class Evaluator(Protocol):
    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def threshold(self) -> float: ...

    @property
    def unknown_activity_events(self) -> int: ...

    @property
    def routing_counts(self) -> RoutingCounts: ...

    @property
    def scorer(self) -> Scorer: ...

    @property
    def open_case_count(self) -> int: ...

    @property
    def scoring_failures(self) -> list[ScoringFailure]: ...

    @property
    def case_alerts(self) -> list[CaseAlert]: ...

    def on_events_batch(
        self,
        events: Sequence[StreamingEvent],
        *,
        source_topic: str | None = None,
        times: Sequence[float] | None = None,
    ) -> ScoredBatch | None: ...

    def expire_batch(
        self, now: float | None = None, *, source_topic: str | None = None
    ) -> ScoredBatch | None: ...

    def drop_partitions(self, partitions: set[int]) -> int: ...

    def take_state_changes(self) -> StateChanges: ...

    def restore_case(self, case_id: str, state: bytes) -> None: ...

    def forget_case(self, case_id: str) -> None: ...

    def last_offset(self, case_id: str) -> int | None: ...

    def swap_scorer(self, scorer: Scorer) -> bool: ...


class EvaluationEncoder(Protocol):
    """Turns an evaluation into the output record's value (JSON unless configured otherwise)."""

    def encode(self, evaluation: StreamingEvaluation, /) -> bytes: ...


class AlertEncoder(Protocol):
    """Turns a case alert into the alert record's value (JSON, or Avro with Avro evaluations)."""

    def encode(self, alert: CaseAlert, /) -> bytes: ...


@dataclass(frozen=True)
class LoopOptions:
    """The plain values the loop itself runs on."""

    input_topic: str
    output_topic: str
    dead_letter_topic: str
    changelog_topic: str
    consumer_config: dict[str, Any]
    max_batch_size: int
    max_batch_wait: float  # seconds
    shutdown_timeout: float  # seconds
    exactly_once: bool = False
    alert_topic: str | None = None  # None: no case alerts


class StopRequest:
    """A flag safe to set from a signal handler; the loop and its waits poll it."""

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


@dataclass(frozen=True)
class Parts:
    """What the loop runs with, built once (``casewatch.daemon.build``)."""

    evaluator: Evaluator
    telemetry: Telemetry
    metrics: LoopMetrics
    outputs: OutputProducer
    checkpoint: Checkpoint
    restorer: Restorer
    rebalance: Rebalance
    intake: Intake
    reloader: ModelReloader
    back_pressure: BackPressure
    stop: StopRequest
    # Checks the topics (retrying until the broker is there); the input's partition count, or
    # None when a stop was requested meanwhile.
    prepare_topics: Callable[[], int | None]
    # None: JSON from the scored columns; ``casewatch.scoring.avro_output`` for Avro.
    encoder: EvaluationEncoder | None = None
    # None: JSON; ``casewatch.scoring.avro_alerts`` when the evaluations are Avro.
    alert_encoder: AlertEncoder | None = None
