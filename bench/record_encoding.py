"""What building and encoding evaluation records costs: record objects vs bytes from columns.

Encodes the same synthetic scored batches twice in one run: the old path (``RecordBuilder``
records, then ``msgspec.json`` per record, as the loop does) and ``RecordEncoder`` (one bytes per
case from the batch's columns). Prints evaluations/s of each and the ratio, per activity count.
Residuals have ``--nonzero`` nonzero transitions per case (every-event scoring: mostly one).

    .venv/bin/python bench/record_encoding.py [--rows 20000] [--batch 500] [--activities 20 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from casewatch.events import ModelIdentity  # noqa: E402
from casewatch.scoring.features import Snapshot  # noqa: E402
from casewatch.scoring.record_bytes import RecordEncoder  # noqa: E402
from casewatch.scoring.records import RecordBuilder  # noqa: E402
from casewatch.scoring.scorer import ScoreBatch  # noqa: E402

IDENTITY = ModelIdentity("reference", "2.0.0", "64c1" * 16)
Batch = tuple[Snapshot, ScoreBatch]
Encode = Callable[[object], bytes]


def batches(rows: int, size: int, activities: int, nonzero: int, seed: int = 7) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, rows, size):
        n = min(size, rows - start)
        residuals = np.zeros((n, activities), dtype=np.float32)
        for _ in range(nonzero):
            residuals[np.arange(n), rng.integers(0, activities, size=n)] = rng.uniform(0.1, 5, n)
        first = rng.uniform(1.7e9, 1.8e9, size=n)
        snap = Snapshot(
            case_ids=[f"case-{start + i}" for i in range(n)],
            triggers=["event"] * n,
            closed=np.zeros(n, dtype=np.bool_),
            n_events=rng.integers(1, 40, size=n),
            unknown=np.zeros(n, dtype=np.int64),
            first_time=first,
            last_time=first + rng.uniform(0, 1e5, size=n),
            partition=rng.integers(0, 12, size=n),
            first_offset=np.arange(start, start + n) * 5,
            last_offset=np.arange(start, start + n) * 5 + 4,
        )
        out.append((snap, ScoreBatch(scores=rng.gamma(2.0, 1.5, size=n), residuals=residuals)))
    return out


def best_rates(
    paths: list[Callable[[Batch], list[bytes]]], work: list[Batch], repeats: int
) -> list[float]:
    """Evaluations/s of each path, best of ``repeats``; the paths take turns within a repeat,
    so a busy neighbour slows both alike."""
    rows = sum(len(snap) for snap, _ in work)
    best = [float("inf")] * len(paths)
    for _ in range(repeats):
        for i, encode in enumerate(paths):
            started = time.perf_counter()
            for batch in work:
                encode(batch)
            best[i] = min(best[i], time.perf_counter() - started)
    return [rows / seconds for seconds in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--activities", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--nonzero", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    kwargs = {"threshold": 3.452, "source_topic": "casewatch-events", "now": 1795530097.64}
    print(f"rows={args.rows} batch={args.batch} nonzero residuals/case={args.nonzero}")
    print(f"{'T':>5} {'old ev/s':>12} {'new ev/s':>12} {'ratio':>7} {'µs/ev old→new':>16}")
    for activities in args.activities:
        labels = [f"Activity {i}" for i in range(activities)]
        builder = RecordBuilder(labels, IDENTITY)
        encoder = RecordEncoder(labels, IDENTITY)
        json = msgspec.json.Encoder().encode

        def old(batch: Batch, builder: RecordBuilder = builder, json: Encode = json) -> list[bytes]:
            return [json(e) for e in builder.build(*batch, **kwargs)]  # type: ignore[arg-type]

        def new(batch: Batch, encoder: RecordEncoder = encoder) -> list[bytes]:
            return encoder.encode(*batch, **kwargs)  # type: ignore[arg-type]

        work = batches(args.rows, args.batch, activities, args.nonzero)
        assert [old(b) for b in work] == [new(b) for b in work], "the two paths disagree"
        old_rate, new_rate = best_rates([old, new], work, args.repeats)
        print(
            f"{activities:>5} {old_rate:>12,.0f} {new_rate:>12,.0f} {new_rate / old_rate:>6.2f}x "
            f"{1e6 / old_rate:>7.2f}→{1e6 / new_rate:.2f}"
        )


if __name__ == "__main__":
    main()
