"""Idle expiry runs on each partition's stream time, never on the daemon's clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from casewatch import StreamingEvaluator, StreamingEvent
from casewatch.state.stream_time import StreamTime
from tests.unit.conftest import USERS

T0 = 1_700_000_000.0
TTL = 60.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ev(
    case: str, name: str, partition: int = 0, offset: int = 0, **kwargs: object
) -> StreamingEvent:
    return StreamingEvent(
        case,
        name,
        attributes={"user": USERS.get(name, "zed")},
        partition=partition,
        offset=offset,
        **kwargs,  # type: ignore[arg-type]
    )


def evaluator(model: Path, clock: Clock) -> StreamingEvaluator:
    return StreamingEvaluator(model, idle_ttl=TTL, clock=clock, track_changes=True)


def test_restore_after_downtime_longer_than_the_ttl_splits_no_case(tiny_model: Path) -> None:
    clock = Clock()
    before = evaluator(tiny_model, clock)
    first = [ev(f"c{i}", name, offset=2 * i + j) for i in range(5) for j, name in enumerate("AB")]
    before.on_events(first, times=[T0 + k * 0.1 for k in range(len(first))])
    states = before.take_state_changes().states

    clock.now = T0 + 2 * 3600  # the restart comes two hours later
    after = evaluator(tiny_model, clock)
    for case_id, _, state in states:
        after.restore_case(case_id, state)
    assert after.expire() == []  # nothing consumed yet: the stream has not moved

    rest = [ev(f"c{i}", name, offset=100 + i, close=name == "E") for i in range(5) for name in "CE"]
    published = after.on_events(rest, times=[T0 + 5 + k * 0.1 for k in range(len(rest))])
    published += after.expire()
    assert {(e.trigger, e.n_events) for e in published} == {("close", 4)}
    assert len(published) == 5


def test_a_clock_jump_between_batches_splits_no_case(tiny_model: Path) -> None:
    clock = Clock()
    evaluator_ = evaluator(tiny_model, clock)
    evaluator_.on_events([ev("c", "A"), ev("c", "B")], times=[T0, T0 + 1])
    clock.now += 10 * TTL
    assert evaluator_.expire() == []
    published = evaluator_.on_events([ev("c", "C"), ev("c", "E", close=True)], times=[T0 + 2] * 2)
    assert [(e.trigger, e.n_events) for e in published] == [("close", 4)]


def test_cases_expire_when_their_own_partition_moves_past_the_ttl(tiny_model: Path) -> None:
    clock = Clock()
    evaluator_ = evaluator(tiny_model, clock)
    evaluator_.on_events([ev("p0", "A", 0), ev("p1", "A", 1)], times=[T0, T0])
    # Partition 0 moves on by more than the TTL; partition 1 receives nothing.
    evaluator_.on_events([ev("p0-late", "A", 0)], times=[T0 + TTL + 1])
    expired = evaluator_.expire()
    assert [(e.case_id, e.trigger, e.n_events) for e in expired] == [("p0", "timeout", 1)]
    assert evaluator_.open_cases() == ["p0-late", "p1"]


def test_a_message_without_a_kafka_time_uses_the_event_time(tiny_model: Path) -> None:
    clock = Clock()
    evaluator_ = evaluator(tiny_model, clock)
    evaluator_.on_events([ev("old", "A", timestamp=T0)], times=[float("nan")])
    evaluator_.on_events([ev("new", "A", timestamp=T0 + TTL + 1)], times=[float("nan")])
    assert [e.case_id for e in evaluator_.expire()] == ["old"]


def test_a_case_seen_before_its_partition_had_a_time_expires_a_ttl_after_it_gets_one(
    tiny_model: Path,
) -> None:
    clock = Clock()
    evaluator_ = evaluator(tiny_model, clock)
    evaluator_.on_events([ev("untimed", "A")], times=[float("nan")])
    evaluator_.on_events([ev("timed", "A")], times=[T0])
    assert evaluator_.expire() == []
    evaluator_.on_events([ev("later", "A")], times=[T0 + TTL + 1])
    assert sorted(e.case_id for e in evaluator_.expire()) == ["timed", "untimed"]


def test_stream_time_is_a_running_maximum_per_partition() -> None:
    stream = StreamTime()
    partitions = np.array([0, 1, 0, 0, 1, 0], dtype=np.int64)
    times = np.array([10.0, 5.0, 8.0, np.nan, 7.0, np.nan])
    # The event time stands in for a missing record time; with neither, the stream holds.
    event_times = np.array([np.nan, np.nan, np.nan, 12.0, np.nan, np.nan])
    seen = stream.advance(partitions, times, event_times)
    assert seen.tolist() == [10.0, 5.0, 10.0, 12.0, 7.0, 12.0]
    assert stream.latest == {0: 12.0, 1: 7.0}
    untimed = stream.advance(np.array([2]), np.array([np.nan]), np.array([np.nan]))
    assert np.isnan(untimed).all()
    assert 2 not in stream.latest


class Running:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_partition_moves_on_with_the_running_clock(tiny_model: Path) -> None:
    clock, running = Clock(), Running()
    evaluator_ = StreamingEvaluator(
        tiny_model, idle_ttl=TTL, idle_quiet=10, clock=clock, monotonic=running
    )
    evaluator_.on_events([ev("p0", "A", 0), ev("p1", "A", 1)], times=[T0, T0])
    running.now += TTL / 2
    evaluator_.on_events([ev("p1", "B", 1)], times=[T0 + TTL / 2])
    running.now += TTL / 2 + 1
    # Partition 0 has been quiet for longer than the TTL; partition 1 heard a record since.
    assert [e.case_id for e in evaluator_.expire()] == ["p0"]
    assert evaluator_.open_cases() == ["p1"]


def test_without_a_quiet_limit_a_quiet_partition_keeps_its_cases(tiny_model: Path) -> None:
    clock, running = Clock(), Running()
    evaluator_ = StreamingEvaluator(tiny_model, idle_ttl=TTL, clock=clock, monotonic=running)
    evaluator_.on_events([ev("p0", "A", 0)], times=[T0])
    running.now += 100 * TTL
    clock.now += 100 * TTL
    assert evaluator_.expire() == []


def test_a_case_restored_between_sweeps_still_expires_on_time(tiny_model: Path) -> None:
    clock = Clock()
    source = evaluator(tiny_model, clock)
    source.on_events([ev("old", "A", 0, offset=1)], times=[T0])
    state = {case: s for case, _, s in source.take_state_changes().states}["old"]
    target = evaluator(tiny_model, clock)
    target.on_events([ev("fresh", "A", 0, offset=5)], times=[T0 + TTL - 1])
    assert target.expire() == []  # swept: the next sweep is due a TTL after "fresh"
    target.restore_case("old", state)
    target.on_events([ev("fresh", "B", 0, offset=6)], times=[T0 + TTL + 1])
    assert [e.case_id for e in target.expire()] == ["old"]
