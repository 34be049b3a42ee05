"""Labelled test cases made from an unlabelled log: BINet-style anomalies injected into a share.

A chosen share of the cases gets exactly one anomaly each. Each case takes the kind that has the
fewest cases so far (ties in a seeded order), so the kinds get about the same number of cases; a
case that cannot take that kind (too short, no attribute to change) takes the next one. A change
to the control flow counts only when it gives a sequence of activities the log never shows: a
rework that the process really does is no anomaly, and labelling it one would charge the scorer
for a correct verdict. The same seed and log give the same cases, kinds and changes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from casewatch.offline.anomalies import KINDS, LogProfile, apply
from casewatch.offline.logs.trace import Trace

__all__ = ["KINDS", "Injected", "inject"]

_TRIES = 8  # random draws per kind and case before the next kind is tried


@dataclass(frozen=True, slots=True)
class Injected:
    """The cases with ground truth, how many got each kind, and kinds the log cannot take."""

    traces: list[Trace]
    counts: dict[str, int]
    missing: dict[str, str]


def inject(
    traces: Sequence[Trace],
    rate: float,
    *,
    seed: int = 0,
    known: Sequence[Trace] = (),
) -> Injected:
    """Label ``traces`` afresh (labels in the log are ignored) with anomalies in ``rate`` of them.

    ``known`` are further cases of the same log (the training share): their activities,
    attribute values and variants count as the log's own too, and they are never changed.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"inject rate must be in [0, 1], got {rate}")
    everything = [t.events for t in known] + [t.events for t in traces]
    profile = LogProfile.of(everything)
    variants = {tuple(e.name for e in events) for events in everything}
    rng = random.Random(seed)
    wanted = round(rate * len(traces))
    order = list(range(len(traces)))
    rng.shuffle(order)
    turns = list(KINDS)
    rng.shuffle(turns)
    result = [Trace(t.case_id, t.events, False, None, ()) for t in traces]
    counts = dict.fromkeys(KINDS, 0)
    done = 0
    for index in order:
        if done == wanted:
            break
        # The kind with the fewest cases goes first, so a kind that a case could not take is
        # still owed a case, and the counts stay even.
        kinds = sorted(turns, key=lambda kind: counts[kind])
        changed = _first_that_fits(traces[index], kinds, rng, profile, variants)
        if changed is not None:
            result[index] = changed
            counts[changed.anomaly_type or ""] += 1
            done += 1
    # With fewer anomalous cases than kinds, some kinds simply had no turn.
    missing = {
        kind: _why_missing(kind, profile)
        for kind in KINDS
        if not counts[kind] and wanted >= len(KINDS)
    }
    return Injected(result, counts, missing)


def _first_that_fits(
    trace: Trace,
    kinds: list[str],
    rng: random.Random,
    profile: LogProfile,
    variants: set[tuple[str, ...]],
) -> Trace | None:
    original = tuple(e.name for e in trace.events)
    for kind in kinds:
        for _ in range(_TRIES):
            applied = apply(kind, list(trace.events), rng, profile)
            if applied is None:
                break  # the trace cannot take this kind at all
            events, blamed = applied
            names = tuple(e.name for e in events)
            if kind == "Attribute" or (names != original and names not in variants):
                return Trace(trace.case_id, events, True, kind, blamed)
    return None


def _why_missing(kind: str, profile: LogProfile) -> str:
    if kind == "Attribute" and not profile.values:
        return "the log's events have no attributes"
    return "no case could take it"
