"""Bytes per open case held by the evaluator, by number of open cases and case length.

    .venv/bin/python bench/memory.py [--open 10000,100000,1000000] [--lengths 5,200]

Each case's first event goes through ``StreamingEvaluator.on_events`` (so the dict entry, the
case id string and the row are created as in production); its remaining events are applied to
the store column-wise, one generation per event, which is what routing does with them, without
spending minutes on a million 200-event cases. Reported: traced bytes (tracemalloc: Python
objects and numpy buffers) and RSS growth, both divided by open cases, plus the store's bytes per
row of capacity (columns only).
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

import numpy as np

from _synthetic import REFERENCE_MODEL, bundled_process
from casewatch.events import StreamingEvent
from casewatch.scoring.evaluator import StreamingEvaluator
from casewatch.scoring.scorer import Scorer

_CHUNK = 100_000


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def fill(evaluator: StreamingEvaluator, cases: int, length: int) -> None:
    process = bundled_process()
    names, users = process.activities, process.users
    for start in range(0, cases, _CHUNK):
        stop = min(cases, start + _CHUNK)
        evaluator.on_events(
            [
                StreamingEvent(
                    f"case-{c:08d}",
                    names[c % len(names)],
                    1.7e9 + c,
                    {"user": users[c % 7]},
                    partition=c % 4,
                    offset=c,
                )
                for c in range(start, stop)
            ]
        )
    store = evaluator.store
    rows = np.fromiter(store.index.values(), dtype=np.int64, count=len(store.index))
    rng = np.random.default_rng(3)
    attribute_columns = store.attribute_ring.shape[2]
    for step in range(1, length):
        for lo in range(0, rows.size, _CHUNK * 4):
            part = rows[lo : lo + _CHUNK * 4]
            store.apply(
                part,
                rng.integers(0, store.shape.activities, part.size),
                rng.integers(0, 8, (part.size, attribute_columns)),
                np.full(part.size, 1.7e9 + step),
                store.partition[part].astype(np.int64),
                store.last_offset[part] + 1,
                0.0,
            )


def measure(scorer: Scorer, cases: int, length: int) -> tuple[float, float, float]:
    # Warm up first: lazy imports and the cached process model must not count as case state.
    fill(StreamingEvaluator(scorer), 10, 2)
    gc.collect()
    evaluator = StreamingEvaluator(scorer)
    rss_before = rss()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(evaluator, cases, length)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    grown = rss() - rss_before
    assert evaluator.open_case_count == cases
    per_row = evaluator.store.nbytes() / evaluator.store.capacity
    return traced / cases, grown / cases, per_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--open", default="10000,100000,1000000")
    parser.add_argument("--lengths", default="5,200")
    args = parser.parse_args()
    scorer = Scorer(REFERENCE_MODEL)
    print(
        f"model {scorer.identity.name}: T={len(scorer.activities)} "
        f"K={scorer.contract.sequence_length} event attributes="
        f"{len(scorer.contract.event_attributes)}"
    )
    print(
        f"{'open cases':>10} {'length':>6} {'traced B/case':>14} {'RSS B/case':>11} "
        f"{'columns B/row':>14}"
    )
    for cases in [int(x) for x in args.open.split(",")]:
        for length in [int(x) for x in args.lengths.split(",")]:
            traced, grown, per_row = measure(scorer, cases, length)
            print(f"{cases:>10,} {length:>6} {traced:>14.0f} {grown:>11.0f} {per_row:>14.0f}")


if __name__ == "__main__":
    main()
