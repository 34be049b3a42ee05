"""Historical event logs (CSV, XES, JSONL, optionally gzipped) read into labelled traces."""

from __future__ import annotations

import ast
import csv
import gzip
import heapq
import io
import os
import xml.etree.ElementTree as ET
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import BinaryIO, cast

import msgspec

from casewatch._errors import LogFormatError
from casewatch._events import StreamingEvent
from casewatch._log_formats import read_jsonl, read_xes
from casewatch._trace import (
    MalformedLogError,
    Progress,
    Trace,
    anomaly_type_of,
    parse_label,
    parse_time,
    report_progress,
)

__all__ = ["Trace", "interleave", "read_log"]

_MARKERS = frozenset({"▶", "■"})
_CSV_COLUMNS = frozenset(
    {"case_id", "event_position", "activity_name", "timestamp"}
    | {"label", "anomaly_type", "anomaly_description"}
)
PROGRESS_EVERY = 10_000
_READ_FAILURES = (OSError, EOFError, ValueError, csv.Error, ET.ParseError, zlib.error)
_LABELS = {"normal": False, "anomalous": True, "false": False, "true": True}


def read_log(path: str | os.PathLike[str], *, progress: Progress | None = None) -> list[Trace]:
    """Read a ``.csv``, ``.xes`` or ``.jsonl`` log (each optionally ``.gz``) into traces.

    ``progress`` receives the number of rows or events read so far, about every 10,000.
    """
    shown = os.fspath(path)
    name = shown.lower().removesuffix(".gz")
    reader = next((read for suffix, read in _READERS.items() if name.endswith(suffix)), None)
    if reader is None:
        raise LogFormatError(f"{shown}: unsupported log format (expected .csv, .xes or .jsonl)")
    try:
        opener = gzip.open if shown.lower().endswith(".gz") else open
        with opener(path, "rb") as stream:
            return reader(stream, progress)
    except _READ_FAILURES as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise LogFormatError(f"{shown}: {cause}") from None


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


def _anomalous_positions(
    anomaly_type: str | None, description: str, n_events: int
) -> tuple[int, ...]:
    """The event indices a BINet-style anomaly description blames; () when it cannot be read."""
    try:
        detail = ast.literal_eval(description)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return ()
    if not isinstance(detail, dict):
        return ()
    try:
        blamed: Iterable[int]
        if anomaly_type == "Insert":
            blamed = detail["indices"]
        elif anomaly_type == "Attribute":
            index = detail["index"]
            blamed = index if isinstance(index, list) else [index]
        elif anomaly_type == "Rework":  # the repeated block sits at start .. start+size-1
            blamed = range(detail["start"], detail["start"] + detail["size"])
        elif anomaly_type == "SkipSequence":  # the first event after the gap
            blamed = [min(detail["start"], n_events - 1)]
        elif anomaly_type in ("Early", "Late"):  # the moved block at its new place
            blamed = range(detail["shift_to"], detail["shift_to"] + detail["size"])
        else:
            return ()
        return tuple(sorted({int(i) for i in blamed if 0 <= int(i) < n_events}))
    except (KeyError, TypeError, ValueError):
        return ()


def _read_csv(stream: io.BufferedIOBase, progress: Progress | None) -> list[Trace]:
    rows = csv.reader(io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig", newline=""))
    header = next(rows, None)
    if header is None:
        raise MalformedLogError("empty file, expected a header row")
    for required in ("case_id", "activity_name"):
        if required not in header:
            raise MalformedLogError(f"missing column {required!r}")
    column = {name: i for i, name in enumerate(header) if name in _CSV_COLUMNS}
    attribute_columns = [(i, name) for i, name in enumerate(header) if name not in _CSV_COLUMNS]

    def cell(row: list[str], name: str) -> str:
        index = column.get(name)
        return row[index] if index is not None else ""

    cases: dict[str, list[tuple[int, StreamingEvent]]] = {}
    truth: dict[str, tuple[str, str, str]] = {}
    for count, row in enumerate(rows, start=1):
        report_progress(progress, count)
        if not row:
            continue
        line = rows.line_num
        if len(row) != len(header):
            raise MalformedLogError(f"line {line}: {len(row)} fields, header has {len(header)}")
        case_id = cell(row, "case_id")
        events = cases.setdefault(case_id, [])
        if case_id not in truth:
            labels = (cell(row, "label"), cell(row, "anomaly_type"))
            truth[case_id] = (*labels, cell(row, "anomaly_description"))
        activity = cell(row, "activity_name")
        if activity in _MARKERS:
            continue
        written_position = cell(row, "event_position")
        if written_position and not written_position.lstrip("-").isdigit():
            raise MalformedLogError(f"line {line}: invalid event_position {written_position!r}")
        position = int(written_position or len(events))
        try:
            stamp = cell(row, "timestamp")
            timestamp = parse_time(stamp) if stamp else None
        except MalformedLogError as exc:
            raise MalformedLogError(f"line {line}: {exc}") from None
        attributes = {n: row[i] for i, n in attribute_columns if row[i] and row[i] not in _MARKERS}
        events.append((position, StreamingEvent(case_id, activity, timestamp, attributes)))

    traces = []
    for case_id, positioned in cases.items():
        positioned.sort(key=lambda item: item[0])
        ordered = [event for _, event in positioned]
        label_text, type_text, description = truth[case_id]
        try:
            label = parse_label(label_text)
        except MalformedLogError as exc:
            raise MalformedLogError(f"case {case_id!r}: {exc}") from None
        kind = anomaly_type_of(type_text) if label else None
        blamed = _anomalous_positions(kind, description, len(ordered)) if kind else ()
        traces.append(Trace(case_id, ordered, label, kind, blamed))
    return traces


_READERS: dict[str, Callable[[io.BufferedIOBase, Progress | None], list[Trace]]] = {
    ".csv": _read_csv,
    ".xes": read_xes,
    ".jsonl": read_jsonl,
}
