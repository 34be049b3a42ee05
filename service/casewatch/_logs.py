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
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, BinaryIO, cast

import msgspec

from casewatch._errors import LogFormatError
from casewatch._events import StreamingEvent

__all__ = ["Trace", "interleave", "read_log"]

Progress = Callable[[int], None]

_MARKERS = frozenset({"▶", "■"})
_CSV_COLUMNS = frozenset(
    {"case_id", "event_position", "activity_name", "timestamp"}
    | {"label", "anomaly_type", "anomaly_description"}
)
_PROGRESS_EVERY = 10_000
_READ_FAILURES = (OSError, EOFError, ValueError, csv.Error, ET.ParseError, zlib.error)
_LABELS = {"normal": False, "anomalous": True, "false": False, "true": True}


@dataclass(frozen=True, slots=True)
class Trace:
    """One case of a log: its events in order and, when the log is labelled, the ground truth.

    ``anomalous_positions`` are 0-based indices into ``events`` of the events the label blames.
    """

    case_id: str
    events: list[StreamingEvent]
    label: bool | None
    anomaly_type: str | None
    anomalous_positions: tuple[int, ...]


class _MalformedLogError(ValueError):
    """Content error raised by the format readers; ``read_log`` prefixes the file name."""


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


def _report(progress: Progress | None, count: int) -> None:
    if progress is not None and count % _PROGRESS_EVERY == 0:
        progress(count)


def _parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _MalformedLogError(f"invalid timestamp {text!r}") from None
    # A timestamp without an offset is taken as UTC so a replay does not depend on the host zone.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _parse_label(value: object) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    label = _LABELS.get(str(value).strip().lower())
    if label is None:
        raise _MalformedLogError(f"unknown label {value!r} (expected normal or anomalous)")
    return label


def _anomaly_type(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


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
        raise _MalformedLogError("empty file, expected a header row")
    for required in ("case_id", "activity_name"):
        if required not in header:
            raise _MalformedLogError(f"missing column {required!r}")
    column = {name: i for i, name in enumerate(header) if name in _CSV_COLUMNS}
    attribute_columns = [(i, name) for i, name in enumerate(header) if name not in _CSV_COLUMNS]

    def cell(row: list[str], name: str) -> str:
        index = column.get(name)
        return row[index] if index is not None else ""

    cases: dict[str, list[tuple[int, StreamingEvent]]] = {}
    truth: dict[str, tuple[str, str, str]] = {}
    for count, row in enumerate(rows, start=1):
        _report(progress, count)
        if not row:
            continue
        line = rows.line_num
        if len(row) != len(header):
            raise _MalformedLogError(f"line {line}: {len(row)} fields, header has {len(header)}")
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
            raise _MalformedLogError(f"line {line}: invalid event_position {written_position!r}")
        position = int(written_position or len(events))
        try:
            stamp = cell(row, "timestamp")
            timestamp = _parse_time(stamp) if stamp else None
        except _MalformedLogError as exc:
            raise _MalformedLogError(f"line {line}: {exc}") from None
        attributes = {n: row[i] for i, n in attribute_columns if row[i] and row[i] not in _MARKERS}
        events.append((position, StreamingEvent(case_id, activity, timestamp, attributes)))

    traces = []
    for case_id, positioned in cases.items():
        positioned.sort(key=lambda item: item[0])
        ordered = [event for _, event in positioned]
        label_text, type_text, description = truth[case_id]
        try:
            label = _parse_label(label_text)
        except _MalformedLogError as exc:
            raise _MalformedLogError(f"case {case_id!r}: {exc}") from None
        kind = _anomaly_type(type_text) if label else None
        blamed = _anomalous_positions(kind, description, len(ordered)) if kind else ()
        traces.append(Trace(case_id, ordered, label, kind, blamed))
    return traces


def _xes_value(kind: str, key: str, value: str) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise _MalformedLogError(f"attribute {key!r}: invalid {kind} {value!r}") from None
    if kind == "boolean":
        return value.strip().lower() == "true"
    return value


_XES_KINDS = frozenset({"string", "date", "int", "float", "boolean", "id"})


def _read_xes(stream: io.BufferedIOBase, progress: Progress | None) -> list[Trace]:
    traces: list[Trace] = []
    path: list[str] = []
    trace_keys: dict[str, Any] = {}
    event_keys: dict[str, tuple[str, Any]] = {}
    events: list[StreamingEvent] = []
    count = 0
    for action, element in ET.iterparse(stream, events=("start", "end")):
        tag = element.tag.rpartition("}")[2]
        if action == "start":
            path.append(tag)
            if tag == "trace":
                trace_keys, events = {}, []
            elif tag == "event":
                event_keys = {}
            continue
        path.pop()
        parent = path[-1] if path else ""
        key, value = element.get("key"), element.get("value")
        if tag in _XES_KINDS and key is not None and value is not None:
            if parent == "event":
                event_keys[key] = (tag, _xes_value(tag, key, value))
            elif parent == "trace":
                trace_keys[key] = _xes_value(tag, key, value)
        elif tag == "event" and parent == "trace":
            count += 1
            _report(progress, count)
            events.append(_xes_event(event_keys, len(events)))
            element.clear()
        elif tag == "trace":
            traces.append(_xes_trace(trace_keys, events, len(traces)))
            element.clear()
    for trace in traces:
        for event in trace.events:
            event.case_id = trace.case_id
    return traces


def _xes_event(keys: dict[str, tuple[str, Any]], index: int) -> StreamingEvent:
    name = keys.pop("concept:name", (None, None))[1]
    if not isinstance(name, str):
        raise _MalformedLogError(f"event {index} of a trace has no string 'concept:name'")
    kind, stamp = keys.pop("time:timestamp", (None, None))
    timestamp = _parse_time(stamp) if kind == "date" and isinstance(stamp, str) else None
    # The case id is filled in once the trace's own attributes have been read.
    return StreamingEvent("", name, timestamp, {k: v for k, (_, v) in keys.items()})


def _xes_trace(keys: dict[str, Any], events: list[StreamingEvent], index: int) -> Trace:
    case_id = keys.get("concept:name")
    if not isinstance(case_id, str):
        raise _MalformedLogError(f"trace {index} has no string 'concept:name'")
    label = _parse_label(keys.get("label"))
    kind = _anomaly_type(keys.get("anomaly_type")) if label else None
    return Trace(case_id, events, label, kind, ())


class _JsonEvent(msgspec.Struct):
    """One line of a JSONL log: the daemon's input event plus optional ground truth."""

    case_id: str
    activity: str
    timestamp: float | str | None = None
    attributes: dict[str, Any] = {}
    close: bool = False
    label: bool | str | None = None
    anomaly_type: str | None = None


def _read_jsonl(stream: io.BufferedIOBase, progress: Progress | None) -> list[Trace]:
    decoder = msgspec.json.Decoder(_JsonEvent)
    cases: dict[str, list[StreamingEvent]] = {}
    truth: dict[str, tuple[bool | None, str | None]] = {}
    for line_number, line in enumerate(stream, start=1):
        _report(progress, line_number)
        if not line.strip():
            continue
        try:
            raw = decoder.decode(line)
            stamp = raw.timestamp
            timestamp = _parse_time(stamp) if isinstance(stamp, str) else stamp
            label = _parse_label(raw.label)
        except (msgspec.DecodeError, _MalformedLogError) as exc:
            raise _MalformedLogError(f"line {line_number}: {exc}") from None
        event = StreamingEvent(raw.case_id, raw.activity, timestamp, raw.attributes)
        cases.setdefault(raw.case_id, []).append(event)
        if label is not None:
            truth.setdefault(raw.case_id, (label, raw.anomaly_type))
    traces = []
    for case_id, events in cases.items():
        label, kind = truth.get(case_id, (None, None))
        traces.append(Trace(case_id, events, label, _anomaly_type(kind) if label else None, ()))
    return traces


_READERS: dict[str, Callable[[io.BufferedIOBase, Progress | None], list[Trace]]] = {
    ".csv": _read_csv,
    ".xes": _read_xes,
    ".jsonl": _read_jsonl,
}
