"""The six BINet anomaly kinds (Nolle et al.), applied to one trace with what the log itself has.

Each kind returns the changed events and the 0-based positions it blames (the same positions
the labelled corpus logs blame), or ``None`` when the trace cannot take it. Sizes follow the
corpus: SkipSequence drops 1-2 events, Insert adds 1-2, Rework repeats a block of 1-3, Early and
Late move a block of 1-2, Attribute changes 1-2 values.

Injected events look like the log's own: an inserted event is a log activity carrying the
attributes of a real event of that activity (the trace's own ``case:`` values kept), a changed
attribute takes a value the log has for that attribute but never with that activity (only
where the activity's values of it repeat). Timestamps
stay in order, as a log sorted by time would show them: moved events take the timestamps of the
places they move to, inserted and repeated events take times between their neighbours.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from casewatch.events import StreamingEvent

__all__ = ["KINDS", "LogProfile", "apply"]

KINDS = ("SkipSequence", "Insert", "Rework", "Early", "Late", "Attribute")

Applied = tuple[list[StreamingEvent], tuple[int, ...]]


@dataclass(slots=True)
class LogProfile:
    """What the log has: activities, events per activity, attribute values seen per activity.

    Every collection is a sorted list or a dict filled in log order, so a seed gives the same
    choices whatever the interpreter's hash seed.
    """

    activities: list[str] = field(default_factory=list)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)
    seen: dict[tuple[str, str], set[Any]] = field(default_factory=dict)
    uses: dict[tuple[str, str], int] = field(default_factory=dict)

    def categorical(self, activity: str, key: str) -> bool:
        """Whether the activity's values of ``key`` repeat, so that an unseen one stands out.

        An attribute that is new on almost every event (an id, a free text, a date) has no odd
        value: changing it would label a case anomalous that no one could tell from a normal one.
        """
        seen = self.seen.get((activity, key))
        return seen is not None and 2 * len(seen) <= self.uses[activity, key]

    @classmethod
    def of(cls, traces: Sequence[Sequence[StreamingEvent]]) -> LogProfile:
        profile = cls()
        values: dict[str, dict[Any, None]] = {}
        for events in traces:
            for event in events:
                profile.examples.setdefault(event.name, []).append(event.attributes)
                for key, value in event.attributes.items():
                    if key.startswith("case:") or not _hashable(value):
                        continue
                    values.setdefault(key, {})[value] = None
                    profile.seen.setdefault((event.name, key), set()).add(value)
                    profile.uses[event.name, key] = profile.uses.get((event.name, key), 0) + 1
        profile.activities = sorted(profile.examples)
        profile.values = {key: sorted(found, key=repr) for key, found in sorted(values.items())}
        return profile


def _hashable(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _retimed(event: StreamingEvent, timestamp: float | None, case_id: str) -> StreamingEvent:
    return msgspec.structs.replace(event, case_id=case_id, timestamp=timestamp, close=False)


def _between(events: Sequence[StreamingEvent], index: int) -> float | None:
    """A time for a new event placed before ``events[index]`` (or after the last one)."""
    before = events[index - 1].timestamp if index > 0 else None
    after = events[index].timestamp if index < len(events) else None
    if before is not None and after is not None:
        return (before + after) / 2
    return before if before is not None else after


def skip_sequence(
    events: list[StreamingEvent], rng: random.Random, _: LogProfile
) -> Applied | None:
    if len(events) < 2:
        return None
    size = rng.randint(1, min(2, len(events) - 1))
    start = rng.randrange(len(events) - size + 1)
    kept = events[:start] + events[start + size :]
    return kept, (min(start, len(kept) - 1),)


def insert(events: list[StreamingEvent], rng: random.Random, profile: LogProfile) -> Applied | None:
    if not events or not profile.activities:
        return None
    changed = list(events)
    case_values = {k: v for k, v in events[0].attributes.items() if k.startswith("case:")}
    places: list[int] = []
    for _ in range(rng.randint(1, 2)):
        place = rng.randint(0, len(changed))
        activity = rng.choice(profile.activities)
        donor = rng.choice(profile.examples[activity])
        attributes = {k: v for k, v in donor.items() if not k.startswith("case:")} | case_values
        new = StreamingEvent(events[0].case_id, activity, _between(changed, place), attributes)
        changed.insert(place, new)
        places = [p + (p >= place) for p in places] + [place]
    return changed, tuple(sorted(places))


def rework(events: list[StreamingEvent], rng: random.Random, _: LogProfile) -> Applied | None:
    if not events:
        return None
    size = rng.randint(1, min(3, len(events)))
    start = rng.randrange(len(events) - size + 1)
    end = start + size
    block = events[start:end]
    first, last = block[0].timestamp, block[-1].timestamp
    following = events[end].timestamp if end < len(events) else None
    if first is None or last is None:
        repeated = [_retimed(e, e.timestamp, e.case_id) for e in block]
        return events[:end] + repeated + events[end:], tuple(range(end, end + size))
    # The repetition starts where the block's successor started, with the block's own spacing,
    # and everything after it moves later by as long as the repetition takes.
    gap = (following - last) if following is not None else 0.0
    offset = last - first + gap
    repeated = [_retimed(e, (e.timestamp or first) + offset, e.case_id) for e in block]
    later = [
        _retimed(e, None if e.timestamp is None else e.timestamp + offset, e.case_id)
        for e in events[end:]
    ]
    return events[:end] + repeated + later, tuple(range(end, end + size))


def _move(events: list[StreamingEvent], source: int, size: int, target: int) -> Applied:
    block = events[source : source + size]
    rest = events[:source] + events[source + size :]
    moved = rest[:target] + block + rest[target:]
    slots = [e.timestamp for e in events]
    if all(s is not None for s in slots):
        moved = [_retimed(e, t, e.case_id) for e, t in zip(moved, slots, strict=True)]
    return moved, tuple(range(target, target + size))


def early(events: list[StreamingEvent], rng: random.Random, _: LogProfile) -> Applied | None:
    if len(events) < 2:
        return None
    size = rng.randint(1, min(2, len(events) - 1))
    source = rng.randint(1, len(events) - size)
    return _move(events, source, size, rng.randrange(source))


def late(events: list[StreamingEvent], rng: random.Random, _: LogProfile) -> Applied | None:
    if len(events) < 2:
        return None
    size = rng.randint(1, min(2, len(events) - 1))
    source = rng.randrange(len(events) - size)
    return _move(events, source, size, rng.randint(source + 1, len(events) - size))


def attribute(
    events: list[StreamingEvent], rng: random.Random, profile: LogProfile
) -> Applied | None:
    # Every (event, attribute) whose attribute has a value in the log the activity never had.
    options = []
    for index, event in enumerate(events):
        for key in event.attributes:
            if key in profile.values and profile.categorical(event.name, key):
                had = profile.seen[event.name, key]
                if any(v not in had for v in profile.values[key]):
                    options.append((index, key))
    if not options:
        return None
    chosen = rng.sample(options, min(len(options), rng.randint(1, 2)))
    changed = list(events)
    for index, key in chosen:
        event = changed[index]
        had = profile.seen[event.name, key]
        value = rng.choice([v for v in profile.values[key] if v not in had])
        attributes = {**event.attributes, key: value}
        changed[index] = msgspec.structs.replace(event, attributes=attributes, close=False)
    return changed, tuple(sorted({index for index, _ in chosen}))


_KIND = Callable[[list[StreamingEvent], random.Random, LogProfile], Applied | None]
_APPLY: dict[str, _KIND] = {
    "SkipSequence": skip_sequence,
    "Insert": insert,
    "Rework": rework,
    "Early": early,
    "Late": late,
    "Attribute": attribute,
}


def apply(
    kind: str, events: list[StreamingEvent], rng: random.Random, profile: LogProfile
) -> Applied | None:
    """Apply one anomaly of ``kind`` to a copy of ``events``; ``None`` when it does not fit."""
    return _APPLY[kind](events, rng, profile)
