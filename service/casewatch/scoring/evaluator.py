"""StreamingEvaluator: events in, evaluations out, with all due cases scored in one model call.

Due cases: a case closes (close marker or end activity); every touched case when scoring on
every event; cases idle past the TTL in their partition's stream time (``expire``, see
``casewatch.state.stream_time``); the least recently seen cases when the open case bound is
exceeded.
Every case that leaves memory gets a final evaluation (or, when the model fails on it, a record
in ``scoring_failures``: see ``casewatch.scoring.isolation``); alerts go to ``case_alerts``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from casewatch.events import ModelIdentity, StreamingEvaluation, StreamingEvent, Trigger
from casewatch.scoring.alerts import AlertJudge, CaseAlert
from casewatch.scoring.blame import DEFAULT_TOP_K
from casewatch.scoring.bound import BoundScorer, Part
from casewatch.scoring.isolation import ScoringFailure
from casewatch.scoring.migration import carry_over, same_state_layout, store_shape
from casewatch.scoring.open_cases import OpenCases
from casewatch.scoring.routing import Router, RoutingCounts
from casewatch.scoring.scored import ScoredBatch, in_event_order
from casewatch.scoring.scorer import Scorer
from casewatch.state.changes import ChangeTracker
from casewatch.state.store import CaseStore, FloatArray, IntArray
from casewatch.state.stream_time import IdleExpiry


class StreamingEvaluator(OpenCases):
    """Keeps open cases in a CaseStore and scores them with an ONNX scorer."""

    def __init__(
        self,
        model: str | Path | Scorer,
        *,
        score_on_every_event: bool = False,
        end_activities: Iterable[str] = (),
        idle_ttl: float | None = None,
        idle_quiet: float | None = None,
        max_open_cases: int | None = None,
        intra_op_threads: int = 1,
        contract_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        initial_capacity: int = 1024,
        top_k: int = 3,
        explanation_top_k: int = DEFAULT_TOP_K,
        track_changes: bool = False,
        isolate_scoring_failures: bool = False,
        alert_after: int | None = None,
        incremental: bool = True,
    ) -> None:
        self.scorer = (
            model
            if isinstance(model, Scorer)
            else Scorer(model, contract_path=contract_path, intra_op_threads=intra_op_threads)
        )
        self.score_on_every_event = score_on_every_event
        self.end_activities = frozenset(end_activities)
        self.idle_ttl = idle_ttl if idle_ttl else None
        self._idle = IdleExpiry(self.idle_ttl, idle_quiet, monotonic)
        self.max_open_cases = max_open_cases
        self._clock = clock
        self.store = CaseStore(store_shape(self.scorer.contract), capacity=initial_capacity)
        # The daemon writes changed cases to its changelog; offline replays need no tracking.
        self._changes = ChangeTracker() if track_changes else None
        self.scoring_failures: list[ScoringFailure] = []
        # Binds each scorer; ``incremental``: window scoring where the model declares it.
        self._binding = functools.partial(
            BoundScorer, top_k=top_k, explanation_top_k=explanation_top_k,
            isolate=isolate_scoring_failures, failures=self.scoring_failures,
            incremental=incremental and score_on_every_event,
        )  # fmt: skip
        self.case_alerts: list[CaseAlert] = []
        self._alerts = AlertJudge(alert_after, self.case_alerts)
        self._bind(self.scorer, RoutingCounts())

    def _bind(self, scorer: Scorer, counts: RoutingCounts) -> None:
        """Resolve everything that depends on the scorer once, not per batch."""
        self.scorer = scorer
        self._bound = self._binding(scorer)
        self._router = Router(self.store, scorer, self.end_activities, counts)

    def swap_scorer(self, scorer: Scorer) -> bool:
        """Score with ``scorer`` from the next batch on; open cases are kept.

        Returns True when the cases had to be carried over to another state layout (another
        activity set, ring length or attributes; see ``casewatch.scoring.migration``).
        """
        migrated = not same_state_layout(self.scorer.contract, scorer.contract)
        if migrated:
            self.store = carry_over(self.store, self.scorer.contract, scorer.contract)
            self._idle.invalidate()
            if self._changes is not None:
                # Every open case's changelog record is in the old layout: rewrite them all.
                self._changes.rows_replaced(self.store.rows())
        self._bind(scorer, self._router.counts)
        return migrated

    # -- identity and inspection ---------------------------------------------------------------

    @property
    def identity(self) -> ModelIdentity:
        return self.scorer.identity

    @property
    def threshold(self) -> float:
        return self.scorer.threshold

    @property
    def unknown_activity_events(self) -> int:
        """Events whose activity the model does not know, since start."""
        return self._router.counts.unknown_activities

    @property
    def routing_counts(self) -> RoutingCounts:
        """Events, unknown activities and attribute values routed since start."""
        return self._router.counts

    @property
    def open_case_count(self) -> int:
        return len(self.store)

    def open_cases(self) -> list[str]:
        return self.store.open_cases()

    # -- the seed API --------------------------------------------------------------------------

    def on_event(self, event: StreamingEvent) -> StreamingEvaluation | None:
        """Add one event; returns its evaluation in every-event mode or when it closes the case.

        Evictions caused by ``max_open_cases`` are only reported by ``on_events``.
        """
        for evaluation in self.on_events([event]):
            if evaluation.case_id == event.case_id and evaluation.trigger in ("event", "close"):
                return evaluation
        return None

    def process_stream(self, events: Iterable[StreamingEvent]) -> Iterator[StreamingEvaluation]:
        """Yields what ``on_event`` yields; cases still open at the end stay open."""
        for event in events:
            evaluation = self.on_event(event)
            if evaluation is not None:
                yield evaluation

    def score_case(self, case_id: str) -> StreamingEvaluation | None:
        """Score an open case now, keeping its state; None for an unknown case."""
        row = self.store.row_of(case_id)
        if row is None:
            return None
        rows = np.array([row], dtype=np.int64)
        part = self._due(rows, [case_id], ["request"], False)
        return _first(self._evaluate([part], None))

    def close_case(self, case_id: str) -> StreamingEvaluation | None:
        """Final evaluation of a case; its state is freed and its next event starts afresh."""
        row = self.store.take(case_id)
        if row is None:
            return None
        rows = np.array([row], dtype=np.int64)
        scored = self._evaluate([self._due(rows, [case_id], ["close"], True)], None)
        self._release(rows)  # after the evaluation: its alert state is read from the row
        return _first(scored)

    # -- the batch API -------------------------------------------------------------------------

    def on_events(
        self,
        events: Sequence[StreamingEvent],
        *,
        source_topic: str | None = None,
        times: Sequence[float] | FloatArray | None = None,
    ) -> list[StreamingEvaluation]:
        """The evaluations of ``on_events_batch`` as records."""
        return _records(self.on_events_batch(events, source_topic=source_topic, times=times))

    def on_events_batch(
        self,
        events: Sequence[StreamingEvent],
        *,
        source_topic: str | None = None,
        times: Sequence[float] | FloatArray | None = None,
    ) -> ScoredBatch | None:
        """Route a batch into the store and score every case it made due, in one model call;
        None when none was due.

        ``times`` are the events' record times (Kafka message timestamps, epoch seconds; NaN
        falls back to the event's timestamp): they drive idle expiry. Without them the clock
        stands in, which is what an offline caller without record times means by idle.
        """
        if not events:
            return None
        batch = self._router.route(events)
        now = self._clock()
        seen = self._idle.seen(batch.partitions, now if times is None else times, batch.timestamps)
        store, router = self.store, self._router
        if self._changes is not None:
            self._changes.touched(batch.rows)
        parts: list[Part] = []
        causes: list[IntArray] = []  # index of the event (or eviction) behind each evaluation
        for selected in batch.generations():
            router.apply(batch, selected, seen)
            due = selected if self.score_on_every_event else selected[batch.closing[selected]]
            if due.size:
                due_closing = batch.closing[due]
                triggers: list[Trigger] = ["close" if c else "event" for c in due_closing.tolist()]
                case_ids = [events[i].case_id for i in due.tolist()]
                parts.append(self._due(batch.rows[due], case_ids, triggers, due_closing))
                causes.append(due)
        released = [batch.rows[batch.closing]]
        if self.max_open_cases is not None and len(store) > self.max_open_cases:
            evicted = store.take_least_recent(len(store) - self.max_open_cases)
            parts.append(self._due_leaving(evicted, "evicted"))
            causes.append(len(events) + np.arange(len(evicted)))
            released.append(evicted)
        scored = self._evaluate(parts, source_topic, now, causes)
        self._release(np.concatenate(released))
        return scored

    def expire(
        self, now: float | None = None, *, source_topic: str | None = None
    ) -> list[StreamingEvaluation]:
        """The evaluations of ``expire_batch`` as records."""
        return _records(self.expire_batch(now, source_topic=source_topic))

    def expire_batch(
        self, now: float | None = None, *, source_topic: str | None = None
    ) -> ScoredBatch | None:
        """Final evaluations of cases idle past the TTL in their partition's stream time.

        ``now`` stands for the stream time of every partition (an offline caller's clock).
        """
        stale = self._idle.take_stale(self.store, now)
        if not stale.size:
            return None
        scored = self._evaluate([self._due_leaving(stale, "timeout")], source_topic)
        self._release(stale)
        return scored

    # -- internals -----------------------------------------------------------------------------

    def _due(
        self,
        rows: IntArray,
        case_ids: list[str],
        triggers: list[Trigger],
        closed: bool | np.ndarray,
    ) -> Part:
        return self._bound.due(self.store, rows, case_ids, triggers, closed)

    def _due_leaving(self, rows: IntArray, trigger: Trigger) -> Part:
        case_ids = self.store.case_ids_of(rows)
        return self._due(rows, case_ids, [trigger] * len(case_ids), False)

    def _evaluate(
        self,
        parts: list[Part],
        source_topic: str | None,
        now: float | None = None,
        causes: list[IntArray] | None = None,
    ) -> ScoredBatch | None:
        if not parts:
            return None
        now = self._clock() if now is None else now
        scored, kept = self._bound.evaluate(parts, source_topic, now)
        if not len(scored):
            return None  # the model failed on every case
        if causes is not None and len(causes) > 1:
            # Generations score in generation order; report in the order of the events.
            cause = np.concatenate(causes)
            scored = in_event_order(scored, cause if kept is None else cause[kept])
        self._alerts.judge(self.store, scored)
        return scored


def _records(scored: ScoredBatch | None) -> list[StreamingEvaluation]:
    return [] if scored is None else scored.evaluations()


def _first(scored: ScoredBatch | None) -> StreamingEvaluation | None:
    return None if scored is None else scored.evaluations()[0]
