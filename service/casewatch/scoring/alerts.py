"""Case alerts: one record when a case is first judged anomalous, one update when it leaves.

The output topic carries every evaluation; when scoring on every event a running case is
evaluated once per event and may cross the threshold back and forth. The alert topic carries
only the changes a consumer acts on:

- ``opened``: the case's streak of consecutive anomalous evaluations reached ``alert_after``
  (k) for the first time. A normal evaluation resets the streak; a case alerts at most once.
- ``closed``: a case that alerted earlier left memory (closed, timed out or evicted); the
  update carries its final evaluation. A case whose alert is opened by its final evaluation
  (always so under the close policy) gets the ``opened`` record only: that evaluation's trigger
  already says the case is over.

Evaluations of trigger ``request`` (an ad-hoc look at a case, ``score_case``) are not part of
the case's life and leave the alert state alone. The state lives in the case store
(``anomalous_streak``, ``alerted``), so it is written to the changelog with the rest of the case
and restored with it: a restarted daemon neither forgets nor repeats an alert.
"""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from casewatch.events import ModelIdentity, StreamingEvaluation, Trigger
from casewatch.state.columns import STREAK_MAX
from casewatch.state.store import CaseStore, IntArray

AlertKind = Literal["opened", "closed"]

# Evaluations after which the case is no longer in memory.
_LEAVING: frozenset[Trigger] = frozenset(("close", "timeout", "evicted"))


class CaseAlert(msgspec.Struct, frozen=True, gc=False):
    """One record of the alert topic (JSON, keyed by case_id).

    ``alert_id`` is derived from the kind and the evaluation's id, which covers the input and
    the model: a redelivered alert has the same id, so consumers can de-duplicate.
    """

    alert_id: str
    kind: AlertKind
    case_id: str
    consecutive_anomalous: int
    alert_after: int
    model: ModelIdentity
    evaluation: StreamingEvaluation


def alert_id(kind: AlertKind, evaluation_id: str) -> str:
    return hashlib.blake2b(f"{kind}|{evaluation_id}".encode(), digest_size=16).hexdigest()


def case_alert(
    kind: AlertKind, streak: int, alert_after: int, evaluation: StreamingEvaluation
) -> CaseAlert:
    return CaseAlert(
        alert_id(kind, evaluation.evaluation_id),
        kind,
        evaluation.case_id,
        streak,
        alert_after,
        evaluation.model,
        evaluation,
    )


class Judged(Protocol):
    """A scored batch as the judge reads it (``casewatch.scoring.scored.ScoredBatch``)."""

    @property
    def rows(self) -> IntArray: ...

    @property
    def triggers(self) -> list[Trigger]: ...

    @property
    def anomalous(self) -> npt.NDArray[np.bool_]: ...

    def __len__(self) -> int: ...

    def evaluations_at(self, positions: list[int]) -> list[StreamingEvaluation]: ...


class AlertJudge:
    """Updates each evaluated case's alert state and collects the alerts it raises.

    ``alert_after`` None switches alerts off: the state columns are then left alone and a batch
    costs nothing.
    """

    def __init__(self, alert_after: int | None, alerts: list[CaseAlert]) -> None:
        if alert_after is not None and not 1 <= alert_after <= STREAK_MAX:
            raise ValueError(f"alert_after must be between 1 and {STREAK_MAX}, not {alert_after}")
        self.alert_after = alert_after
        self.alerts = alerts

    def judge(self, store: CaseStore, batch: Judged) -> None:
        """Apply ``batch`` (in event order; ``batch.rows[i]`` is the store row of the i-th
        evaluation, still readable for a case that is leaving) to the alert state, appending the
        alerts raised. Only the evaluations that raise one are made as records."""
        k = self.alert_after
        if k is None or not len(batch):
            return
        rows = batch.rows
        row_list = rows.tolist()
        # A case evaluated several times in a batch (one evaluation per event) carries its state
        # from one evaluation to the next here and is written back once.
        state = dict(
            zip(
                row_list,
                zip(
                    store.anomalous_streak[rows].tolist(), store.alerted[rows].tolist(), strict=True
                ),
                strict=True,
            )
        )
        raised: list[tuple[AlertKind, int, int]] = []  # kind, streak, position in the batch
        verdicts = zip(row_list, batch.triggers, batch.anomalous.tolist(), strict=True)
        for position, (row, trigger, anomalous) in enumerate(verdicts):
            if trigger == "request":
                continue
            streak, alerted = state[row]
            streak = min(streak + 1, STREAK_MAX) if anomalous else 0
            if not alerted and streak >= k:
                alerted = True
                raised.append(("opened", streak, position))
            elif alerted and trigger in _LEAVING:
                raised.append(("closed", streak, position))
            state[row] = (streak, alerted)
        if raised:
            evaluations = batch.evaluations_at([position for _, _, position in raised])
            self.alerts.extend(
                case_alert(kind, streak, k, evaluation)
                for (kind, streak, _), evaluation in zip(raised, evaluations, strict=True)
            )
        changed = np.fromiter(state, dtype=np.int64, count=len(state))
        streaks, alerted_flags = zip(*state.values(), strict=True)
        store.set_alert_state(changed, list(streaks), list(alerted_flags))
