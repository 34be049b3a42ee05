"""A scorer bound to everything that turns due cases into evaluation records.

Resolved once per model, not per batch (the evaluator binds a new one when the model is
swapped): feature gathering, the model call with failing cases isolated (on a window of the
newest events when scoring on every event with an incremental model, see
``casewatch.scoring.incremental``), explanations of the anomalous cases, and the records.
"""

from __future__ import annotations

import numpy as np

from casewatch.events import Trigger
from casewatch.scoring.blame import Blamer
from casewatch.scoring.features import FeatureGatherer, Snapshot, concat_parts, snapshot
from casewatch.scoring.incremental import IncrementalScoring, narrow_ring
from casewatch.scoring.isolation import Isolation, ScoringFailure
from casewatch.scoring.record_bytes import RecordEncoder
from casewatch.scoring.records import RecordBuilder
from casewatch.scoring.scored import ScoredBatch
from casewatch.scoring.scorer import Features, Scorer
from casewatch.state.store import CaseStore, IntArray

Part = tuple[Snapshot, Features]


class BoundScorer:
    """Due cases of a store in, scored batches (and their records) out."""

    def __init__(
        self,
        scorer: Scorer,
        *,
        top_k: int,
        explanation_top_k: int,
        isolate: bool,
        failures: list[ScoringFailure],
        incremental: bool = False,
    ) -> None:
        contract = scorer.contract
        self.scorer = scorer
        self.gatherer = FeatureGatherer(
            scorer.features, [len(a.values) for a in contract.categorical_case_attributes]
        )
        self.blamer = Blamer(contract, top_k=explanation_top_k)
        self.records = RecordBuilder(
            scorer.activities, scorer.identity, top_k=top_k, blamer=self.blamer
        )
        self.encoder = RecordEncoder(
            scorer.activities, scorer.identity, top_k=top_k, blamer=self.blamer
        )
        self.isolation = Isolation(scorer, enabled=isolate, failures=failures)
        # ``incremental`` only when every event is scored: the running state merges them all.
        declared = contract.incremental if incremental else None
        self.incremental = None if declared is None else IncrementalScoring(
            self.isolation, window=declared.window, activities=len(scorer.activities)
        )  # fmt: skip
        # Models declaring incremental scoring read only a case's own events, so batches of
        # short cases run on a ring cut to their longest case, whatever the policy.
        self._narrow_window = None if contract.incremental is None or (
            contract.incremental.window >= contract.sequence_length
        ) else contract.incremental.window  # fmt: skip

    def forget(self, rows: IntArray) -> None:
        """The cases of ``rows`` were replaced (restored): their running state is void."""
        if self.incremental is not None:
            self.incremental.state.forget(rows)

    def due(
        self,
        store: CaseStore,
        rows: IntArray,
        case_ids: list[str],
        triggers: list[Trigger],
        closed: bool | np.ndarray,
    ) -> Part:
        """The snapshot and model features of ``rows``, read before any of them is released."""
        if isinstance(closed, np.ndarray):
            closed_mask = np.broadcast_to(closed.astype(np.bool_, copy=False), rows.shape).copy()
        else:
            closed_mask = np.full(rows.shape, closed, dtype=np.bool_)
        snap = snapshot(store, rows, case_ids, triggers, closed_mask)
        return snap, self.gatherer.gather(store, rows, closed_mask)

    def evaluate(
        self, parts: list[Part], source_topic: str | None, now: float
    ) -> tuple[ScoredBatch, IntArray | None]:
        """One model call for all parts: the scored batch, and which of the concatenated cases
        it kept (None: all; the others went to the scoring failures)."""
        snap, features = concat_parts(parts)
        if self._narrow_window is not None and len(snap):
            longest = int(snap.n_events.max())
            ring = self.scorer.contract.sequence_length
            features = narrow_ring(features, longest, ring, self._narrow_window)
        scoring = self.isolation if self.incremental is None else self.incremental
        snap, scores, kept = scoring.score(snap, features, source_topic, now)
        scores = self.blamer.explain(self.scorer, scores, features, kept)
        scored = ScoredBatch(
            snap,
            scores,
            threshold=self.scorer.threshold,
            source_topic=source_topic,
            now=now,
            builder=self.records,
            encoder=self.encoder,
        )
        return scored, kept
