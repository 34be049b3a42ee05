"""A scored batch straight to JSON evaluation records, one ``bytes`` per case.

The bytes parse to what ``msgspec.json`` writes for the ``StreamingEvaluation`` that
``RecordBuilder`` builds from the same batch: same fields, same order, same ``evaluation_id``.
No record object or dict is made per case: whatever depends on the model alone (identity, label
fragments) is encoded once, whatever depends on the batch alone (threshold, topic, clock) once
per batch, and every numeric column in one ``msgspec`` call. Each record is then one bytes
``%`` of a per-batch template.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import pairwise
from math import isnan
from typing import Any

import msgspec
import numpy as np

from casewatch.events import ModelIdentity
from casewatch.scoring.blame import Blamer
from casewatch.scoring.features import Snapshot
from casewatch.scoring.scorer import ScoreBatch

_json = msgspec.json.Encoder().encode
_BOOL = (b"false", b"true")


def _numbers(values: list[float] | list[int]) -> list[bytes]:
    """Each number's JSON text (NaN and infinities as ``null``, like ``msgspec.json``).

    One encoder call for the whole column: a list of numbers holds no comma but its separators.
    """
    if not values:
        return []
    return _json(values)[1:-1].split(b",")


class RecordEncoder:
    """``encode(snapshot, scores, ...) -> list[bytes]``; label fragments resolved once."""

    def __init__(
        self,
        activities: list[str],
        identity: ModelIdentity,
        *,
        top_k: int = 3,
        blamer: Blamer | None = None,
    ) -> None:
        labels = [str(a) for a in activities]
        # '"label":' for the residual map, '{"transition":"label","residual":' for the top list.
        self._map_keys = np.asarray([_json(a) + b":" for a in labels], dtype=object)
        self._top_heads = np.asarray(
            [b'{"transition":' + _json(a) + b',"residual":' for a in labels], dtype=object
        )
        self._identity = identity
        self._model = _json(identity)
        self._top_k = max(1, min(top_k, len(labels)))
        self._triggers: dict[str, bytes] = {}
        self._blamer = blamer

    def encode(
        self,
        snap: Snapshot,
        batch: ScoreBatch,
        *,
        threshold: float,
        source_topic: str | None,
        now: float,
    ) -> list[bytes]:
        maps, tops = self._residual_texts(len(snap), batch.residuals)
        template = self._template(threshold, source_topic, now)
        scores = batch.scores.tolist()
        rounded = _numbers([round(s, 6) for s in scores])
        n_events = snap.n_events.tolist()
        partitions = snap.partition.tolist()
        last_offsets = snap.last_offset.tolist()
        first_times = [None if isnan(t) else t for t in snap.first_time.tolist()]
        last_times = [None if isnan(t) else t for t in snap.last_time.tolist()]
        triggers = self._trigger_texts(snap.triggers)
        explanations = self._explanation_texts(snap, batch, threshold)
        id_prefix = f"{self._identity.sha256}|"
        blake2b = hashlib.blake2b
        out: list[bytes] = []
        append = out.append
        for (
            case_id, score, score_text, n, trigger, trigger_text, partition, first_offset,
            last_offset, first_time, last_time, closed, unknown, residual_map, top, explanation,
        ) in zip(
            snap.case_ids, scores, rounded, n_events, snap.triggers, triggers, partitions,
            snap.first_offset.tolist(), last_offsets, first_times, last_times,
            snap.closed.tolist(), snap.unknown.tolist(), maps, tops, explanations, strict=True,
        ):  # fmt: skip
            # The id text is RecordBuilder's, character for character: redeliveries de-duplicate.
            text = (
                f"{id_prefix}{case_id}|{n}|{trigger}|{partition}|{first_offset}|"
                f"{last_offset}|{first_time}|{last_time}"
            )
            append(
                template
                % (
                    blake2b(text.encode(), digest_size=16).hexdigest().encode(),
                    _json(case_id),
                    b"%d" % n,
                    score_text,
                    _BOOL[score > threshold],
                    residual_map,
                    top,
                    _BOOL[closed],
                    trigger_text,
                    _json(first_time),
                    _json(last_time),
                    b"%d" % partition,
                    b"%d" % last_offset,
                    b"%d" % unknown,
                    explanation,
                )
            )
        return out

    def _template(self, threshold: float, source_topic: str | None, now: float) -> bytes:
        """The batch's record with a ``%b`` slot per case field; ``%`` in constants escaped."""

        def constant(value: object) -> bytes:
            return _json(value).replace(b"%", b"%%")

        return (
            b'{"evaluation_id":"%b","case_id":%b,"n_events":%b,"trace_score":%b,"threshold":'
            + constant(threshold)
            + b',"anomalous":%b,"per_transition_residuals":{%b},"top_transitions":[%b],'
            b'"closed":%b,"trigger":%b,"first_event_at":%b,"last_event_at":%b,"evaluated_at":'
            + constant(now)
            + b',"model":'
            + self._model.replace(b"%", b"%%")
            + b',"source":{"topic":'
            + constant(source_topic)
            + b',"partition":%b,"offset":%b},"unknown_activities":%b,"explanation":%b}'
        )

    def _explanation_texts(
        self, snap: Snapshot, batch: ScoreBatch, threshold: float
    ) -> list[bytes]:
        """``null`` for each case but the anomalous ones of an explaining model; those few are
        encoded from the same ``Blame`` records the builder puts in its evaluations."""
        if self._blamer is None:
            return [b"null"] * len(snap)
        blames = self._blamer.blames(batch.explanation, batch.scores > threshold, snap.n_events)
        return [b"null" if b is None else _json(b) for b in blames]

    def _residual_texts(
        self, n_cases: int, residuals: np.ndarray[Any, Any]
    ) -> tuple[list[bytes], list[bytes]]:
        """Each case's residual map and top transitions, the insides of their JSON brackets."""
        # Only the nonzero residuals are rounded and written; rounding turns some into zeros.
        case_of, transition = np.nonzero(residuals > 0)
        values = np.round(residuals[case_of, transition].astype(np.float64), 6)
        kept = values > 0
        case_of, transition, values = case_of[kept], transition[kept], values[kept]
        texts = _numbers(values.tolist())
        return (
            self._residual_maps(n_cases, case_of, transition, texts),
            self._top_lists(n_cases, case_of, transition, values, texts),
        )

    def _residual_maps(
        self,
        n_cases: int,
        case_of: np.ndarray[Any, Any],
        transition: np.ndarray[Any, Any],
        texts: list[bytes],
    ) -> list[bytes]:
        """Each case's nonzero residuals as the inside of a JSON object."""
        pairs = self._map_keys[transition] + np.asarray(texts, dtype=object)
        return _joined_runs(pairs.tolist(), case_of, n_cases)

    def _top_lists(
        self,
        n_cases: int,
        case_of: np.ndarray[Any, Any],
        transition: np.ndarray[Any, Any],
        values: np.ndarray[Any, Any],
        texts: list[bytes],
    ) -> list[bytes]:
        """Each case's ``top_k`` nonzero residuals, largest first (ties: lower id), as the
        inside of a JSON array. Sorting the nonzero entries alone: a case has few of them."""
        order = np.lexsort((transition, -values, case_of))
        by_case = case_of[order]
        rank = np.arange(len(order)) - np.searchsorted(by_case, by_case)
        chosen = order[rank < self._top_k]
        items = self._top_heads[transition[chosen]] + np.asarray(texts, dtype=object)[chosen] + b"}"
        return _joined_runs(items.tolist(), case_of[chosen], n_cases)

    def _trigger_texts(self, triggers: Sequence[str]) -> list[bytes]:
        known = self._triggers
        for trigger in set(triggers).difference(known):
            known[trigger] = _json(trigger)
        return [known[t] for t in triggers]


def _joined_runs(items: list[bytes], case_of: np.ndarray[Any, Any], n_cases: int) -> list[bytes]:
    """``items`` (sorted by case, ``case_of`` naming each one's case) comma-joined per case."""
    bounds = np.searchsorted(case_of, np.arange(n_cases + 1)).tolist()
    join = b",".join
    return [join(items[lo:hi]) for lo, hi in pairwise(bounds)]


__all__ = ["RecordEncoder"]
