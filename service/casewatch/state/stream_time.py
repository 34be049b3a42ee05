"""Idle expiry in the stream's own time, per partition.

A partition's stream time is the latest record time consumed from it: the Kafka timestamp of
each message (CreateTime set by the producer, or LogAppendTime when the topic is configured so),
or the event's own timestamp for a message without one. It moves only when records arrive and
never backwards, so a case is idle when its partition's stream has moved on by the TTL since the
case's last event. Downtime, consumer lag and jumps of the daemon's clock do not move it: after a
restart the restored cases wait for the queued events of their partition, not for a wall clock.

A partition whose stream stops keeps its stream time. With a quiet limit set, a partition that
has delivered nothing for that long of the daemon's running time (a monotonic clock, so downtime
and clock jumps do not count, and a lagging partition is never quiet) moves on with the running
clock from then on, so the cases of a stream that stopped still time out. Without one, they stay
open until the partition's next record (memory stays bounded by ``max_open_cases``).

Each case's ``last_seen`` holds the stream time of its partition when its last event arrived.
The sweep compares the whole column against each partition's cutoff in one numpy pass, and is
only run once some partition has moved on far enough for a case to be due, so with many open
cases the cost is not paid on every batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from casewatch.state.store import CaseStore, FloatArray, IntArray

# A sweep waits until some partition has moved on by at least this share of the TTL: expiry is
# then at most 1 % of the TTL late, and a steady trickle of expiries does not sweep per batch.
_SWEEP_GRANULARITY = 0.01


class StreamTime:
    """The latest record time consumed from each partition."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.latest: dict[int, float] = {}
        self._heard_at: dict[int, float] = {}  # partition -> running time of its last record
        self._monotonic = monotonic

    def advance(
        self,
        partitions: IntArray,
        record_times: Sequence[float] | FloatArray | float,
        event_times: FloatArray,
    ) -> FloatArray:
        """Each event's stream time: the running maximum of record times on its partition.

        A NaN record time (a message without a timestamp) falls back to the event's own time;
        with neither, the event does not move the stream. An event on a partition with no time
        yet gets NaN, which the sweep replaces once the partition has a time.
        """
        times = np.array(np.broadcast_to(record_times, event_times.shape), dtype=np.float64)
        untimed = np.isnan(times)
        times[untimed] = event_times[untimed]
        seen = np.empty(times.shape, dtype=np.float64)
        latest, heard_at, running = self.latest, self._heard_at, self._monotonic()
        for partition in np.unique(partitions).tolist():
            heard_at[partition] = running
            mask = partitions == partition
            maximum = np.fmax.accumulate(
                np.concatenate(([latest.get(partition, -math.inf)], times[mask]))
            )[1:]
            seen[mask] = maximum
            if maximum.size and maximum[-1] > -math.inf:
                latest[partition] = float(maximum[-1])
        seen[seen == -math.inf] = np.nan
        return seen

    def current(self, quiet_after: float | None) -> dict[int, float]:
        """Each partition's stream time, quiet partitions moved on by the running clock."""
        if quiet_after is None:
            return self.latest
        running, heard_at = self._monotonic(), self._heard_at
        current = {}
        for partition, latest in self.latest.items():
            quiet = running - heard_at[partition]
            current[partition] = latest + quiet if quiet >= quiet_after else latest
        return current

    def forget(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.latest.pop(partition, None)
            self._heard_at.pop(partition, None)


class IdleSweep:
    """Finds the rows of a CaseStore idle past the TTL in their partition's stream time."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._swept_at: dict[int, float] = {}  # partition -> its stream time at the last sweep
        self._slack = -math.inf  # how far any partition may move on before a case is due

    def invalidate(self) -> None:
        """Rows changed other than by events (restored, carried over): sweep next time."""
        self._slack = -math.inf

    def restored(self, partition: int, last_seen: float) -> None:
        """A row loaded from the changelog: bring the next sweep forward to when it is due.

        Cheaper than ``invalidate`` while a restore loads many rows between two batches.
        """
        swept = self._swept_at.get(partition)
        if swept is not None and not math.isnan(last_seen):
            self._slack = min(self._slack, last_seen + self.ttl - swept)

    def due(self, latest: dict[int, float]) -> bool:
        step = max(self._slack, self.ttl * _SWEEP_GRANULARITY)
        swept = self._swept_at
        return any(t - swept.get(p, -math.inf) >= step for p, t in latest.items())

    def take_stale(self, store: CaseStore, latest: dict[int, float], now: float | None) -> IntArray:
        """Rows idle past the TTL, least recently seen first, taken out of the store's index.

        ``now`` stands for every partition's stream time (an offline caller's clock).
        """
        rows = self._stale_rows(store, latest, now)
        if now is not None:
            self.invalidate()  # the remaining slack was measured against ``now``
        store.take_rows(rows)
        return rows

    def _stale_rows(
        self, store: CaseStore, latest: dict[int, float], now: float | None
    ) -> IntArray:
        occupied = store.n_events > 0
        partition = store.partition.astype(np.int64)
        size = max(int(partition.max(initial=-1)), max(latest, default=-1)) + 2
        lookup = np.full(size, np.nan if now is None else now, dtype=np.float64)
        if now is None:
            for p, t in latest.items():
                lookup[p + 1] = t
        stream = lookup[partition + 1]
        # A case that arrived before its partition had any time starts its idle time now.
        store.adopt_stream_time(stream)
        last_seen = store.last_seen
        slack = last_seen + self.ttl - stream
        with np.errstate(invalid="ignore"):
            stale = occupied & (slack < 0)
        remaining = slack[occupied & ~stale]
        remaining = remaining[~np.isnan(remaining)]
        self._slack = float(remaining.min()) if remaining.size else math.inf
        self._swept_at = dict(latest)
        rows = np.flatnonzero(stale)
        return rows[np.argsort(last_seen[rows], kind="stable")]


class IdleExpiry:
    """Stream time and the idle sweep of one evaluator, behind the calls the evaluator makes."""

    def __init__(
        self,
        ttl: float | None,
        quiet: float | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = StreamTime(monotonic)
        self._sweep = IdleSweep(ttl) if ttl else None
        # How long a partition may deliver nothing before its stream time follows the running
        # clock; None keeps the cases of a quiet partition until its next record.
        self._quiet = quiet

    def seen(
        self,
        partitions: IntArray,
        record_times: Sequence[float] | FloatArray | float,
        event_times: FloatArray,
    ) -> FloatArray:
        return self.stream.advance(partitions, record_times, event_times)

    def take_stale(self, store: CaseStore, now: float | None) -> IntArray:
        """Rows idle past the TTL, taken out of the store's index (none when no sweep is due)."""
        sweep = self._sweep
        if sweep is None or not store:
            return _NO_ROWS
        latest = self.stream.current(self._quiet)
        if now is None and not sweep.due(latest):
            return _NO_ROWS
        return sweep.take_stale(store, latest, now)

    def invalidate(self) -> None:
        """Rows changed other than by events (carried over to a new layout): sweep next time."""
        if self._sweep is not None:
            self._sweep.invalidate()

    def restored(self, store: CaseStore, row: int) -> None:
        if self._sweep is not None:
            self._sweep.restored(int(store.partition[row]), float(store.last_seen[row]))

    def forget(self, partitions: Iterable[int]) -> None:
        self.stream.forget(partitions)


_NO_ROWS: IntArray = np.zeros(0, dtype=np.int64)
