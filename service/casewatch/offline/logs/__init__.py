"""Historical event logs (CSV, Parquet, XES, JSONL; gzip except Parquet) read into traces."""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import logging
import os
import xml.etree.ElementTree as ET
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import cast

import msgspec

from casewatch.errors import LogFormatError
from casewatch.events import StreamingEvent
from casewatch.offline.logs.columns import LogColumns
from casewatch.offline.logs.csv_log import read_csv
from casewatch.offline.logs.jsonl import read_jsonl
from casewatch.offline.logs.parquet_log import read_parquet
from casewatch.offline.logs.trace import Progress, Trace
from casewatch.offline.logs.xes_log import read_xes

__all__ = ["LogColumns", "Trace", "interleave", "read_log"]

_READ_FAILURES = (OSError, EOFError, ValueError, csv.Error, ET.ParseError, zlib.error)
_logger = logging.getLogger("casewatch.logs")
_Reader = Callable[[io.BufferedIOBase, Progress | None, LogColumns | None, list[str]], list[Trace]]
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".xes", ".xes.gz", ".jsonl", ".jsonl.gz")


def read_log(
    path: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    columns: LogColumns | None = None,
) -> list[Trace]:
    """Read a ``.csv``, ``.parquet``, ``.xes`` or ``.jsonl`` log (all but Parquet may be ``.gz``).

    ``columns`` names the case/activity/timestamp/position columns of a CSV or Parquet log; by
    default the pm4py names, or casewatch's own when the header has those. ``progress`` receives
    the number of rows or events read so far, about every 10,000. What a reader skips (an XES
    list attribute, say) is logged once as a warning naming the file.
    """
    shown = os.fspath(path)
    lowered = shown.lower()
    if not lowered.endswith(SUFFIXES):
        raise LogFormatError(f"{shown}: unsupported log format (expected {', '.join(SUFFIXES)})")
    name = lowered.removesuffix(".gz")
    reader = next(read for suffix, read in _READERS.items() if name.endswith(suffix))
    notes: list[str] = []
    try:
        opener = gzip.open if lowered.endswith(".gz") else open
        with opener(path, "rb") as stream:
            traces = reader(stream, progress, columns, notes)
    except _READ_FAILURES as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise LogFormatError(f"{shown}: {cause}") from None
    for note in notes:
        _logger.warning("%s: %s", shown, note)
    return traces


def interleave(
    traces: Sequence[Trace], *, open_cases: int = 64, close_marker: bool = True
) -> Iterator[StreamingEvent]:
    """Replay the traces' events in a deterministic order that mixes cases like a live system.

    When every event has a timestamp, events come in timestamp order (ties by trace order, then
    position) while each case keeps its own event order. Otherwise up to ``open_cases`` traces are
    in flight and take turns, one event each; a finished trace makes room for the next one.
    With ``close_marker`` the last event of each trace carries ``close=True``.
    """
    if open_cases < 1:
        raise ValueError(f"open_cases must be at least 1, got {open_cases}")
    pending = [t for t in traces if t.events]
    timed = all(e.timestamp is not None for t in pending for e in t.events)
    order = _by_time(pending) if timed else _round_robin(pending, open_cases)
    for trace_index, position in order:
        events = pending[trace_index].events
        event = events[position]
        if close_marker and position == len(events) - 1:
            event = msgspec.structs.replace(event, close=True)
        yield event


def _by_time(traces: list[Trace]) -> Iterator[tuple[int, int]]:
    # Runs only when every event has a timestamp. A merge on each case's next event rather than a
    # global sort: a case whose own timestamps go backwards (an injected Early/Late anomaly) must
    # still be replayed in its logged order, or the replay would erase the anomaly.
    heap = [(cast(float, t.events[0].timestamp), i, 0) for i, t in enumerate(traces)]
    heapq.heapify(heap)
    while heap:
        _, i, position = heap[0]
        yield i, position
        if position + 1 < len(traces[i].events):
            heapq.heapreplace(
                heap, (cast(float, traces[i].events[position + 1].timestamp), i, position + 1)
            )
        else:
            heapq.heappop(heap)


def _round_robin(traces: list[Trace], open_cases: int) -> Iterator[tuple[int, int]]:
    waiting = iter(range(len(traces)))
    in_flight: deque[tuple[int, int]] = deque((i, 0) for i in islice(waiting, open_cases))
    while in_flight:
        i, position = in_flight.popleft()
        yield i, position
        if position + 1 < len(traces[i].events):
            in_flight.append((i, position + 1))
        elif (following := next(waiting, None)) is not None:
            in_flight.append((following, 0))


_READERS: dict[str, _Reader] = {
    ".csv": lambda stream, progress, columns, _: read_csv(stream, progress, columns),
    ".parquet": lambda stream, progress, columns, _: read_parquet(stream, progress, columns),
    ".xes": lambda stream, progress, _, notes: read_xes(stream, progress, notes=notes),
    ".jsonl": lambda stream, progress, _c, _n: read_jsonl(stream, progress),
}
