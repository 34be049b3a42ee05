"""XES and JSONL event logs (the CSV reader lives in ``casewatch._logs``)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import msgspec

from casewatch._events import StreamingEvent
from casewatch._trace import (
    MalformedLogError,
    Progress,
    Trace,
    anomaly_type_of,
    parse_label,
    parse_time,
    report_progress,
)


def _xes_value(kind: str, key: str, value: str) -> Any:
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise MalformedLogError(f"attribute {key!r}: invalid {kind} {value!r}") from None
    if kind == "boolean":
        return value.strip().lower() == "true"
    return value


_XES_KINDS = frozenset({"string", "date", "int", "float", "boolean", "id"})


def read_xes(stream: io.BufferedIOBase, progress: Progress | None) -> list[Trace]:
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
            report_progress(progress, count)
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
        raise MalformedLogError(f"event {index} of a trace has no string 'concept:name'")
    kind, stamp = keys.pop("time:timestamp", (None, None))
    timestamp = parse_time(stamp) if kind == "date" and isinstance(stamp, str) else None
    # The case id is filled in once the trace's own attributes have been read.
    return StreamingEvent("", name, timestamp, {k: v for k, (_, v) in keys.items()})


def _xes_trace(keys: dict[str, Any], events: list[StreamingEvent], index: int) -> Trace:
    case_id = keys.get("concept:name")
    if not isinstance(case_id, str):
        raise MalformedLogError(f"trace {index} has no string 'concept:name'")
    label = parse_label(keys.get("label"))
    kind = anomaly_type_of(keys.get("anomaly_type")) if label else None
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


def read_jsonl(stream: io.BufferedIOBase, progress: Progress | None) -> list[Trace]:
    decoder = msgspec.json.Decoder(_JsonEvent)
    cases: dict[str, list[StreamingEvent]] = {}
    truth: dict[str, tuple[bool | None, str | None]] = {}
    for line_number, line in enumerate(stream, start=1):
        report_progress(progress, line_number)
        if not line.strip():
            continue
        try:
            raw = decoder.decode(line)
            stamp = raw.timestamp
            timestamp = parse_time(stamp) if isinstance(stamp, str) else stamp
            label = parse_label(raw.label)
        except (msgspec.DecodeError, MalformedLogError) as exc:
            raise MalformedLogError(f"line {line_number}: {exc}") from None
        event = StreamingEvent(raw.case_id, raw.activity, timestamp, raw.attributes)
        cases.setdefault(raw.case_id, []).append(event)
        if label is not None:
            truth.setdefault(raw.case_id, (label, raw.anomaly_type))
    traces = []
    for case_id, events in cases.items():
        label, kind = truth.get(case_id, (None, None))
        traces.append(Trace(case_id, events, label, anomaly_type_of(kind) if label else None, ()))
    return traces
