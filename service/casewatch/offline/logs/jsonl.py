"""JSONL event logs: one input event per line, as the daemon reads them from Kafka."""

from __future__ import annotations

import io
from typing import Any

import msgspec

from casewatch.events import StreamingEvent
from casewatch.offline.logs.trace import (
    MalformedLogError,
    Progress,
    Trace,
    anomaly_type_of,
    parse_label,
    parse_time,
    report_progress,
)


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
    """Read a JSONL log; the events of each case stay in file order."""
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
