from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from casewatch.events import StreamingEvent
from casewatch.offline.anomalies import KINDS, LogProfile, apply
from casewatch.offline.inject import inject
from casewatch.offline.logs.trace import Trace

USERS = {"A": "ann", "B": "bob", "C": "cid", "D": "dan", "E": "eve", "F": "fay"}
T0 = 1_700_000_000.0


def trace(case_id: str, activities: str, *, timed: bool = True) -> Trace:
    events = [
        StreamingEvent(
            case_id,
            name,
            T0 + 60.0 * i if timed else None,
            {"user": USERS[name], "case:channel": "web"},
        )
        for i, name in enumerate(activities)
    ]
    return Trace(case_id, events, None, None, ())


def log(count: int = 60, *, timed: bool = True) -> list[Trace]:
    rng = random.Random(5)
    variants = ["ABCEF", "ABDEF", "ABCDEF"]
    return [trace(f"c{i}", rng.choice(variants), timed=timed) for i in range(count)]


def names(events: list[StreamingEvent]) -> str:
    return "".join(e.name for e in events)


def times(events: list[StreamingEvent]) -> list[float]:
    return [e.timestamp for e in events if e.timestamp is not None]


def applied(
    kind: str, activities: str, seed: int = 3
) -> tuple[list[StreamingEvent], tuple[int, ...]]:
    profile = LogProfile.of([t.events for t in log()])
    result = apply(kind, trace("x", activities).events, random.Random(seed), profile)
    assert result is not None
    return result


@pytest.mark.parametrize("seed", range(20))
def test_skip_sequence_drops_one_or_two_events_and_blames_the_one_after(seed: int) -> None:
    events, blamed = applied("SkipSequence", "ABCDEF", seed)

    assert 4 <= len(events) <= 5
    (position,) = blamed
    dropped, original = 6 - len(events), "ABCDEF"
    (start,) = [
        s for s in range(7 - dropped) if names(events) == original[:s] + original[s + dropped :]
    ]
    assert position == min(start, len(events) - 1)
    assert times(events) == sorted(times(events))


@pytest.mark.parametrize("seed", range(20))
def test_insert_adds_log_activities_with_log_attributes(seed: int) -> None:
    events, blamed = applied("Insert", "ABCEF", seed)

    assert 1 <= len(blamed) <= 2 and len(events) == 5 + len(blamed)
    rest = [e for i, e in enumerate(events) if i not in blamed]
    assert names(rest) == "ABCEF"
    for i in blamed:
        new = events[i]
        assert new.name in "ABCDEF"
        # Attributes of a real event of that activity, with the case's own case attributes.
        assert new.attributes == {"user": USERS[new.name], "case:channel": "web"}
        assert new.case_id == "x"
    assert times(events) == sorted(times(events)) and len(times(events)) == len(events)


@pytest.mark.parametrize("seed", range(20))
def test_rework_repeats_a_block_right_after_itself(seed: int) -> None:
    events, blamed = applied("Rework", "ABCEF", seed)

    size = len(blamed)
    assert 1 <= size <= 3 and len(events) == 5 + size
    start = blamed[0]
    assert blamed == tuple(range(start, start + size))
    assert names(events[start - size : start]) == names(events[start : start + size])
    assert names(events[:start] + events[start + size :]) == "ABCEF"
    stamps = times(events)
    assert stamps == sorted(stamps) and len(stamps) == len(events)


@pytest.mark.parametrize(("kind", "seed"), [(k, s) for k in ("Early", "Late") for s in range(20)])
def test_early_and_late_move_a_block_and_keep_time_order(kind: str, seed: int) -> None:
    original = trace("x", "ABCDEF").events
    events, blamed = applied(kind, "ABCDEF", seed)

    assert sorted(names(events)) == sorted("ABCDEF") and names(events) != "ABCDEF"
    block = names(events)[blamed[0] : blamed[-1] + 1]
    assert 1 <= len(block) <= 2
    where = "ABCDEF".index(block)
    assert (blamed[0] < where) if kind == "Early" else (blamed[0] > where)
    # The moved events take the timestamps of the places they now hold.
    assert times(events) == times(original)
    moved = {e.name: e for e in events}
    assert all(moved[n].attributes["user"] == USERS[n] for n in block)


@pytest.mark.parametrize("seed", range(20))
def test_attribute_takes_a_value_the_activity_never_had(seed: int) -> None:
    events, blamed = applied("Attribute", "ABCEF", seed)

    assert names(events) == "ABCEF" and 1 <= len(blamed) <= 2
    for i, event in enumerate(events):
        if i in blamed:
            assert event.attributes["user"] != USERS[event.name]
            assert event.attributes["user"] in USERS.values()
        else:
            assert event.attributes["user"] == USERS[event.name]
        assert event.attributes["case:channel"] == "web"


def test_attribute_leaves_values_that_never_repeat_alone() -> None:
    traces = log()
    for t in traces:
        for i, e in enumerate(t.events):
            e.attributes = {**e.attributes, "document": f"{t.case_id}-{i}"}
    profile = LogProfile.of([t.events for t in traces])
    rng = random.Random(0)

    for t in traces[:20]:
        result = apply("Attribute", t.events, rng, profile)
        assert result is not None
        changed, _ = result
        assert [e.attributes["document"] for e in changed] == [
            e.attributes["document"] for e in t.events
        ]


def test_kinds_that_do_not_fit_say_so() -> None:
    profile = LogProfile.of([[StreamingEvent("x", "A")]])
    single = [StreamingEvent("x", "A")]

    for kind in ("SkipSequence", "Early", "Late", "Attribute"):
        assert apply(kind, single, random.Random(0), profile) is None


def test_injection_labels_exactly_the_share_with_one_anomaly_each() -> None:
    traces = log(200)
    labelled = [Trace(t.case_id, t.events, True, "Insert", (0,)) for t in traces]

    result = inject(labelled, 0.1, seed=4, known=log(50))

    assert [t.case_id for t in result.traces] == [t.case_id for t in traces]
    anomalous = [t for t in result.traces if t.label]
    assert len(anomalous) == 20 == sum(result.counts.values())
    assert Counter(t.anomaly_type for t in anomalous) == {
        k: n for k, n in result.counts.items() if n
    }
    # Labels in the log are ignored; normal cases are the log's own events, untouched.
    for before, after in zip(traces, result.traces, strict=True):
        if not after.label:
            assert after.events is before.events and after.anomaly_type is None
        else:
            assert after.anomalous_positions
    # The kind with the fewest cases goes first, so each gets a sixth, give or take one.
    assert max(result.counts.values()) - min(result.counts.values()) <= 1


def test_control_flow_anomalies_give_variants_the_log_never_shows() -> None:
    traces = log(300)
    known = {names(t.events) for t in traces}

    result = inject(traces, 0.5, seed=2)

    for t in result.traces:
        if t.label and t.anomaly_type != "Attribute":
            assert names(t.events) not in known


def test_injection_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[tuple[str, str | None, tuple[int, ...], str, list[object]]]:
        result = inject(log(120), 0.2, seed=seed)
        return [
            (
                t.case_id,
                t.anomaly_type,
                t.anomalous_positions,
                names(t.events),
                [(e.timestamp, sorted(e.attributes.items())) for e in t.events],
            )
            for t in result.traces
        ]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_untimed_logs_stay_untimed() -> None:
    result = inject(log(60, timed=False), 0.5, seed=1)

    assert all(e.timestamp is None for t in result.traces for e in t.events)


def test_a_log_without_attributes_says_why_there_is_no_attribute_anomaly() -> None:
    bare = [
        Trace(t.case_id, [StreamingEvent(t.case_id, e.name) for e in t.events], None, None, ())
        for t in log(120)
    ]

    result = inject(bare, 0.2, seed=1)

    assert result.counts["Attribute"] == 0
    assert result.missing == {"Attribute": "the log's events have no attributes"}
    assert sum(result.counts.values()) == 24


def test_rate_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="inject rate"):
        inject(log(10), 1.5)


def test_every_kind_is_used_on_a_long_enough_log() -> None:
    result = inject(log(300), 0.2, seed=0)

    assert set(KINDS) == {k for k, n in result.counts.items() if n}


def test_injection_does_not_depend_on_the_hash_seed() -> None:
    # Sets of strings iterate in an order that changes with PYTHONHASHSEED; nothing the injection
    # chooses may depend on it.
    script = (
        "from tests.unit.test_inject import inject, log, names\n"
        "result = inject(log(120), 0.3, seed=5)\n"
        "print([(t.anomaly_type, names(t.events), [sorted(e.attributes.items()) "
        "for e in t.events]) for t in result.traces])\n"
    )

    def run(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    assert run("1") == run("2")
