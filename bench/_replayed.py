"""Benchmark streams replayed from a labelled log: real cases at a chosen anomalous rate.

The random walks of ``_synthetic`` control case length exactly, but nearly every walk is
anomalous under a model fitted on the real process, so every evaluation pays for an explanation.
A user's stream is mostly normal. This replays the held-out half of the bundled log (the half the
reference model was not trained on), keeps ``anomaly_rate`` of its cases anomalous, and repeats
those cases under fresh case ids, in a shuffled order each round, until the stream is long enough.
"""

from __future__ import annotations

import functools
from collections import deque
from itertools import islice
from pathlib import Path

import numpy as np

from _synthetic import BUNDLED_LOG, Stream
from casewatch.offline.logs import read_log
from casewatch.offline.quality import subsample_anomalous
from casewatch.offline.train import split

Case = tuple[tuple[str, ...], tuple[str, ...], bool]  # activities, users, labelled anomalous


@functools.cache
def held_out_cases(log: Path = BUNDLED_LOG, anomaly_rate: float = 0.05) -> tuple[Case, ...]:
    """The later half of ``log`` (the reference model trains on the first), subsampled so that
    ``anomaly_rate`` of its cases are anomalous."""
    _, held_out = split(read_log(log), 0.5)
    kept = subsample_anomalous(held_out, anomaly_rate)
    return tuple(
        (
            tuple(e.name for e in trace.events),
            tuple(str(e.attributes.get("user", "")) for e in trace.events),
            bool(trace.label),
        )
        for trace in kept
        if trace.events
    )


def replayed(events: int, anomaly_rate: float, open_cases: int, *, seed: int = 7) -> Stream:
    """About ``events`` events (whole cases) of held-out cases, ``open_cases`` in flight."""
    cases = held_out_cases(anomaly_rate=anomaly_rate)
    rng = np.random.default_rng(seed)
    chosen: list[Case] = []
    total = 0
    while total < events:
        for index in rng.permutation(len(cases)).tolist():
            chosen.append(cases[index])
            total += len(cases[index][0])
            if total >= events:
                break
    return _interleave(chosen, open_cases)


def _interleave(cases: list[Case], open_cases: int) -> Stream:
    """Round robin like ``casewatch.offline.logs.interleave``: a finished case frees its slot."""
    stream = Stream([], [], [], [])
    waiting = iter(range(len(cases)))
    in_flight = deque((i, 0) for i in islice(waiting, open_cases))
    while in_flight:
        case, position = in_flight.popleft()
        activities, users, _ = cases[case]
        last = position == len(activities) - 1
        stream.case_ids.append(f"case-{case:08d}")
        stream.activities.append(activities[position])
        stream.users.append(users[position])
        stream.closes.append(last)
        if not last:
            in_flight.append((case, position + 1))
        elif (following := next(waiting, None)) is not None:
            in_flight.append((following, 0))
    return stream


def anomalous_share(anomaly_rate: float) -> float:
    """The share of the replayed cases the log labels anomalous (the subsample's real rate)."""
    cases = held_out_cases(anomaly_rate=anomaly_rate)
    return sum(anomalous for _, _, anomalous in cases) / max(1, len(cases))
