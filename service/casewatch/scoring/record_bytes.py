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
from binascii import hexlify
from collections.abc import Sequence
from functools import partial
from operator import methodcaller
from typing import Any

import numpy as np

from casewatch.events import ModelIdentity
from casewatch.scoring.blame import Blamer
from casewatch.scoring.features import Snapshot
from casewatch.scoring.json_columns import (
    joined_runs,
    json,
    numbers,
    repr_texts,
    round6,
    string_texts,
)
from casewatch.scoring.scorer import ScoreBatch

_BLAKE2B = partial(hashlib.blake2b, digest_size=16)
_DIGEST = methodcaller("digest")


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
        self._map_keys = np.asarray([json(a) + b":" for a in labels], dtype=object)
        self._top_heads = np.asarray(
            [b'{"transition":' + json(a) + b',"residual":' for a in labels], dtype=object
        )
        self._model = json(identity)
        # RecordBuilder's id text "{sha256}|{case_id}|{n_events}|{trigger}|{partition}|
        # {first_offset}|{last_offset}|{first_time}|{last_time}", encoded, as a bytes format.
        self._id_text = identity.sha256.encode().replace(b"%", b"%%") + b"|%b" * 8
        self._top_k = max(1, min(top_k, len(labels)))
        self._triggers: dict[str, bytes] = {}
        self._trigger_bytes: dict[str, bytes] = {}
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
        if not len(snap):
            return []
        maps, tops = self._residual_texts(len(snap), batch.residuals)
        case_ids, case_bytes = string_texts(snap.case_ids)
        n_events = numbers(snap.n_events.tolist())
        partitions = numbers(snap.partition.tolist())
        last_offsets = numbers(snap.last_offset.tolist())
        first_times = numbers(snap.first_time.tolist())  # NaN (no event time) is null
        last_times = numbers(snap.last_time.tolist())
        id_texts = map(
            self._id_text.__mod__,
            zip(
                case_bytes, n_events, self._trigger_names(snap.triggers), partitions,
                numbers(snap.first_offset.tolist()), last_offsets,
                repr_texts(snap.first_time, first_times), repr_texts(snap.last_time, last_times),
                strict=True,
            ),
        )  # fmt: skip
        columns = (
            # The evaluation_id: RecordBuilder's, so redeliveries de-duplicate.
            map(hexlify, map(_DIGEST, map(_BLAKE2B, id_texts))),
            case_ids,
            n_events,
            numbers(round6(batch.scores)),
            numbers((batch.scores > threshold).tolist()),
            maps,
            tops,
            numbers(snap.closed.tolist()),
            self._trigger_texts(snap.triggers),
            first_times,
            last_times,
            partitions,
            last_offsets,
            numbers(snap.unknown.tolist()),
            self._explanation_texts(snap, batch, threshold),
        )
        # Every field is a column of bytes by now: the records come off one map, with no Python
        # frame per case.
        template = self._template(threshold, source_topic, now)
        return list(map(template.__mod__, zip(*columns, strict=True)))

    def _template(self, threshold: float, source_topic: str | None, now: float) -> bytes:
        """The batch's record with a ``%b`` slot per case field; ``%`` in constants escaped."""

        def constant(value: object) -> bytes:
            return json(value).replace(b"%", b"%%")

        return (
            b'{"evaluation_id":"%b","case_id":"%b","n_events":%b,"trace_score":%b,"threshold":'
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
        return [b"null" if b is None else json(b) for b in blames]

    def _residual_texts(
        self, n_cases: int, residuals: np.ndarray[Any, Any]
    ) -> tuple[list[bytes], list[bytes]]:
        """Each case's residual map and top transitions, the insides of their JSON brackets."""
        # Only the nonzero residuals are rounded and written; rounding turns some into zeros.
        case_of, transition = np.nonzero(residuals > 0)
        values = np.round(residuals[case_of, transition].astype(np.float64), 6)
        kept = values > 0
        case_of, transition, values = case_of[kept], transition[kept], values[kept]
        texts = numbers(values.tolist())
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
        return joined_runs(pairs.tolist(), case_of, n_cases)

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
        return joined_runs(items.tolist(), case_of[chosen], n_cases)

    def _trigger_texts(self, triggers: Sequence[str]) -> list[bytes]:
        """Each trigger as JSON (a handful of names, each encoded once)."""
        known = self._triggers
        for trigger in set(triggers).difference(known):
            known[trigger] = json(trigger)
        return list(map(known.__getitem__, triggers))

    def _trigger_names(self, triggers: Sequence[str]) -> list[bytes]:
        """Each trigger's UTF-8 bytes, for the id text."""
        known = self._trigger_bytes
        for trigger in set(triggers).difference(known):
            known[trigger] = trigger.encode()
        return list(map(known.__getitem__, triggers))


__all__ = ["RecordEncoder"]
