"""Synthetic event streams for the benchmarks: random walks over the bundled log's process.

A first-order Markov chain (activity -> next activity, activity -> user) is fitted on the bundled
log once; each synthetic case walks it for exactly ``case_length`` steps, so case length is under
the benchmark's control instead of the log's. Up to ``open_cases`` cases are in flight and take
turns, one event each, like ``casewatch.offline.logs.interleave``; the last event of a case
carries the close marker.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from casewatch.events import StreamingEvent
from casewatch.offline.export import build_model
from casewatch.offline.logs import read_log
from casewatch.offline.ngram import fit_ngram
from casewatch.offline.train import split
from casewatch.scoring.scorer import Scorer

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_LOG = ROOT / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"
REFERENCE_MODEL = ROOT / "models" / "reference.onnx"


@dataclass(frozen=True)
class Process:
    activities: list[str]
    users: list[str]
    start: np.ndarray  # [T] probability of the first activity
    step: np.ndarray  # [T, T] probability of the next activity
    user: np.ndarray  # [T, U] probability of the user per activity


@functools.cache
def bundled_process() -> Process:
    traces = read_log(BUNDLED_LOG)
    activities = sorted({e.name for t in traces for e in t.events})
    users = sorted({str(e.attributes.get("user")) for t in traces for e in t.events})
    a_id = {a: i for i, a in enumerate(activities)}
    u_id = {u: i for i, u in enumerate(users)}
    t, u = len(activities), len(users)
    start, step, user = np.ones(t), np.ones((t, t)), np.ones((t, u))
    for trace in traces:
        ids = [a_id[e.name] for e in trace.events]
        if not ids:
            continue
        start[ids[0]] += 50
        for a, b in itertools.pairwise(ids):
            step[a, b] += 50
        for e, a in zip(trace.events, ids, strict=True):
            user[a, u_id[str(e.attributes.get("user"))]] += 50
    return Process(
        activities,
        users,
        start / start.sum(),
        step / step.sum(axis=1, keepdims=True),
        user / user.sum(axis=1, keepdims=True),
    )


@dataclass(frozen=True)
class Stream:
    """Events in send order as parallel lists (cheap to encode or wrap)."""

    case_ids: list[str]
    activities: list[str]
    users: list[str]
    closes: list[bool]

    def __len__(self) -> int:
        return len(self.case_ids)

    def events(self, timestamp: float | None = None) -> list[StreamingEvent]:
        return [
            StreamingEvent(c, a, timestamp, {"user": u}, close)
            for c, a, u, close in zip(
                self.case_ids, self.activities, self.users, self.closes, strict=True
            )
        ]


def generate(cases: int, case_length: int, open_cases: int, *, seed: int = 7) -> Stream:
    """``cases`` cases of exactly ``case_length`` events, ``open_cases`` of them in flight."""
    process = bundled_process()
    rng = np.random.default_rng(seed)
    t = len(process.activities)
    # Walk all cases in lock-step with inverse-CDF sampling: one vectorised draw per step.
    walks = np.empty((cases, case_length), dtype=np.int64)
    walks[:, 0] = _draw(rng, np.broadcast_to(process.start, (cases, t)))
    for position in range(1, case_length):
        walks[:, position] = _draw(rng, process.step[walks[:, position - 1]])
    users = np.empty_like(walks)
    for activity in range(t):
        # Grouped by activity: one searchsorted per activity instead of a [events, U] matrix.
        where = walks == activity
        cumulative = np.cumsum(process.user[activity])
        picks = rng.random(int(where.sum())) * cumulative[-1]
        users[where] = np.minimum(np.searchsorted(cumulative, picks), len(cumulative) - 1)
    order = _round_robin(cases, case_length, min(open_cases, cases))
    case_of, position = order[:, 0], order[:, 1]
    names = np.asarray(process.activities, dtype=object)
    user_names = np.asarray(process.users, dtype=object)
    return Stream(
        case_ids=[f"case-{c:08d}" for c in case_of.tolist()],
        activities=names[walks[case_of, position]].tolist(),
        users=user_names[users[case_of, position]].tolist(),
        closes=(position == case_length - 1).tolist(),
    )


def _draw(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(probabilities, axis=1)
    picks = rng.random((probabilities.shape[0], 1)) * cumulative[:, -1:]
    return np.minimum((cumulative < picks).sum(axis=1), probabilities.shape[1] - 1)


def _round_robin(cases: int, case_length: int, open_cases: int) -> np.ndarray:
    """(case, position) pairs: ``open_cases`` slots take turns; a finished case frees its slot.

    Slot s serves cases s, s + open_cases, ... back to back and starts s % case_length rounds
    late, so cases close steadily instead of all in the same round.
    """
    case = np.repeat(np.arange(cases), case_length)
    position = np.tile(np.arange(case_length), cases)
    slot, k = case % open_cases, case // open_cases
    rounds = slot % case_length + k * case_length + position
    order = np.lexsort((slot, rounds))
    return np.stack([case[order], position[order]], axis=1)


def encode(stream: Stream) -> tuple[list[bytes], list[bytes]]:
    """Kafka keys and record heads; the feeder appends the send time and the closing brace."""
    keys = [c.encode() for c in stream.case_ids]
    close = {True: b"true", False: b"false"}
    heads = [
        b'{"case_id":"%s","activity":"%s","attributes":{"user":"%s"},"close":%s,"timestamp":'
        % (c.encode(), a.encode(), u.encode(), close[x])
        for c, a, u, x in zip(
            stream.case_ids, stream.activities, stream.users, stream.closes, strict=True
        )
    ]
    return keys, heads


def first_cases(stream: Stream, fraction: float) -> Stream:
    ordered = list(dict.fromkeys(stream.case_ids))
    kept = set(ordered[: max(1, int(len(ordered) * fraction))])
    keep = [i for i, c in enumerate(stream.case_ids) if c in kept]
    return Stream(
        [stream.case_ids[i] for i in keep], [stream.activities[i] for i in keep],
        [stream.users[i] for i in keep], [stream.closes[i] for i in keep],
    )  # fmt: skip


def incremental_model(directory: Path, model: Path = REFERENCE_MODEL) -> Path:
    """``model`` when its contract declares incremental scoring, else the bundled model's
    recipe (n-gram tables fitted on the first half of the bundled log, its threshold) exported
    to ``directory`` with the current export, which declares it."""
    contract = Scorer(model).contract
    if contract.incremental is not None:
        return model
    training, _ = split(read_log(BUNDLED_LOG), 0.5)
    exported = build_model(
        fit_ngram(training), name=contract.name, version=contract.version,
        sequence_length=contract.sequence_length, threshold=contract.threshold,
        threshold_method=contract.threshold_method,
    )  # fmt: skip
    out = directory / "incremental.onnx"
    onnx.save(exported, str(out))
    return out
