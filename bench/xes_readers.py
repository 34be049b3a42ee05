"""XES readers on one large generated log: casewatch's parser on the standard library's
ElementTree and on lxml, and, where installed, pm4py's and rustxes' importers.

    python bench/xes_readers.py [--events 100000] [--repeat 3]

casewatch's figures are to finished traces; pm4py's and rustxes' stop at their own data frame,
so their figures are lower bounds of a reader built on them. Readers that are not installed are
listed as such, so the script runs in the project's own environment too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from casewatch.offline.logs.xes_log import default_iterparse, read_xes

ACTIVITIES = [f"Activity {chr(ord('A') + i)}" for i in range(12)]
RESOURCES = [f"user{i}" for i in range(40)]


def generate(path: Path, n_events: int, seed: int = 1) -> int:
    """Write an XES log of about ``n_events`` events; return the number of traces."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<log xes.version="2.0" xmlns="http://www.xes-standard.org/">\n'
        '  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>\n'
        '  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>\n'
    ]
    events = traces = 0
    while events < n_events:
        length = rng.randint(4, 16)
        stamp = start + dt.timedelta(minutes=rng.randint(0, 500_000))
        parts.append(
            f'  <trace>\n    <string key="concept:name" value="case-{traces}"/>\n'
            f'    <string key="channel" value="{rng.choice(["web", "phone", "mail"])}"/>\n'
        )
        for _ in range(length):
            stamp += dt.timedelta(minutes=rng.randint(1, 600))
            parts.append(
                "    <event>\n"
                f'      <string key="concept:name" value="{rng.choice(ACTIVITIES)}"/>\n'
                f'      <date key="time:timestamp" value="{stamp.isoformat()}"/>\n'
                f'      <string key="org:resource" value="{rng.choice(RESOURCES)}"/>\n'
                '      <string key="lifecycle:transition" value="complete"/>\n'
                f'      <int key="amount" value="{rng.randint(1, 5000)}"/>\n'
                f'      <float key="cost" value="{rng.random() * 100:.3f}"/>\n'
                f'      <boolean key="urgent" value="{str(rng.random() < 0.1).lower()}"/>\n'
                "    </event>\n"
            )
        parts.append("  </trace>\n")
        events += length
        traces += 1
    parts.append("</log>\n")
    path.write_text("".join(parts), encoding="utf-8")
    return traces


def casewatch_reader(iterparse: Any) -> Callable[[Path], int]:
    def run(path: Path) -> int:
        with path.open("rb") as stream:
            return sum(len(t.events) for t in read_xes(stream, None, iterparse=iterparse))

    return run


def contenders() -> dict[str, Callable[[Path], int] | str]:
    found: dict[str, Callable[[Path], int] | str] = {
        "casewatch, xml.etree": casewatch_reader(default_iterparse())
    }
    try:
        from lxml import etree

        found["casewatch, lxml"] = casewatch_reader(etree.iterparse)
    except ImportError:
        found["casewatch, lxml"] = "lxml not installed"
    try:
        import pm4py

        found["pm4py.read_xes (to pandas)"] = lambda p: len(pm4py.read_xes(str(p)))
    except ImportError:
        found["pm4py.read_xes (to pandas)"] = "pm4py not installed"
    try:
        import rustxes

        found["rustxes.import_xes (to polars)"] = lambda p: rustxes.import_xes(str(p))[0].height
    except ImportError:
        found["rustxes.import_xes (to polars)"] = "rustxes not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "large.xes"
        n_traces = generate(path, args.events)
        size = path.stat().st_size
        packed = len(gzip.compress(path.read_bytes(), compresslevel=6))
        print(
            f"log: {n_traces} traces, ~{args.events} events, "
            f"{size / 1e6:.1f} MB ({packed / 1e6:.1f} MB gzipped)"
        )
        results: dict[str, float] = {}
        for name, reader in contenders().items():
            if isinstance(reader, str):
                print(f"  {name:<32} skipped: {reader}")
                continue
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                count = reader(path)
                best = min(best, time.perf_counter() - started)
            results[name] = best
            print(f"  {name:<32} {best:7.3f} s  {count / best:>10,.0f} events/s")
        baseline = results["casewatch, xml.etree"]
        for name, seconds in results.items():
            print(
                f"  ratio {name:<26} {seconds / baseline:5.2f}x the standard-library parser's time"
            )


if __name__ == "__main__":
    main()
