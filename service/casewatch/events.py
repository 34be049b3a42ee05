"""Input events and output evaluations: the records casewatch reads and writes."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Trigger = Literal["close", "event", "timeout", "evicted", "request"]


# Events and evaluations hold only strings, numbers and JSON-like containers, so they cannot
# close a reference cycle; keeping them out of the cycle collector (gc=False) saves a collection
# pass every few hundred records, a large share of the per-event cost at 100k events/s.


class StreamingEvent(msgspec.Struct, gc=False):
    """One event of one case.

    ``timestamp`` is epoch seconds (None when the source has none). ``close`` marks the case's
    last event. ``partition``/``offset`` locate the Kafka record the event came from (-1 offline).
    """

    case_id: str
    name: str
    timestamp: float | None = None
    attributes: dict[str, Any] = {}
    close: bool = False
    partition: int = -1
    offset: int = -1


class ModelIdentity(msgspec.Struct, frozen=True, gc=False):
    name: str
    version: str
    sha256: str


class Source(msgspec.Struct, frozen=True, gc=False):
    topic: str | None
    partition: int
    offset: int


class TransitionResidual(msgspec.Struct, frozen=True, gc=False):
    transition: str
    residual: float


class Blame(msgspec.Struct, frozen=True, gc=False):
    """An event an anomalous evaluation is blamed on, and what the model expected in its place.

    ``position`` is 1-based in the case (``n_events + 1`` for the end of a closed case);
    ``attribute`` names the blamed event attribute, None when the activity (or the end) is to
    blame; ``observed`` and ``expected`` are activities then, else values of the attribute.
    """

    position: int
    activity: str
    attribute: str | None
    observed: str
    expected: str
    expected_probability: float
    observed_probability: float
    surprise: float
    reason: str


class StreamingEvaluation(msgspec.Struct, gc=False):
    """The verdict on one case at one point of its life; the output topic's record (JSON)."""

    evaluation_id: str
    case_id: str
    n_events: int
    trace_score: float
    threshold: float
    anomalous: bool
    per_transition_residuals: dict[str, float]
    top_transitions: list[TransitionResidual]
    closed: bool
    trigger: Trigger
    first_event_at: float | None
    last_event_at: float | None
    evaluated_at: float
    model: ModelIdentity
    source: Source
    unknown_activities: int = 0
    # Anomalous evaluations of a model with explanation outputs only; None otherwise.
    explanation: list[Blame] | None = None
