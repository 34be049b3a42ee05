"""Rows of a tabular log (CSV, Parquet) grouped into ordered, labelled traces."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from casewatch.events import StreamingEvent
from casewatch.offline.logs.columns import ResolvedColumns
from casewatch.offline.logs.trace import (
    MalformedLogError,
    Trace,
    anomaly_type_of,
    parse_label,
    parse_time,
)

__all__ = ["TableBuilder"]

_MARKERS = frozenset({"▶", "■"})
_T = TypeVar("_T")
_Row = tuple[int, float | None, StreamingEvent]  # position, timestamp, event


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _timestamp(value: object, text_format: str | None = None) -> float | None:
    if isinstance(value, str):
        if not value:
            return None
        if text_format is None:
            return parse_time(value)
        try:
            value = dt.datetime.strptime(value, text_format)
        except ValueError:
            raise MalformedLogError(
                f"invalid timestamp {value!r} (expected format {text_format!r})"
            ) from None
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())  # a date alone is its midnight
    if isinstance(value, dt.datetime):
        # A timestamp without an offset is taken as UTC, as ``parse_time`` does for text.
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise MalformedLogError(f"invalid timestamp {value!r}")


def _kept(value: object) -> bool:
    """Whether a cell is an attribute value: not missing, not empty, not a marker."""
    if isinstance(value, str):
        return bool(value) and value not in _MARKERS
    return value is not None


def _position(value: object) -> int | None:
    if isinstance(value, str):
        if not value:
            return None
        if value.lstrip("-").isdigit():
            return int(value)
    elif value is None:
        return None
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedLogError(f"invalid event position {value!r}")


def _attribute(value: object) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


class TableBuilder:
    """Collects rows case by case, then orders each case's events.

    Events are ordered by the position column when the log has one; otherwise by timestamp when
    every event of the case has one (a stable sort, so ties keep file order); otherwise in file
    order. Start/end marker rows (``▶``/``■``) carry labels but no event.
    """

    def __init__(
        self, columns: ResolvedColumns, timestamp_format: str | None = None, *, text: bool = False
    ) -> None:
        """``text``: every cell is a string (CSV)."""
        self.columns = columns
        self.timestamp_format = timestamp_format
        self.text = text
        self.cases: dict[str, list[_Row]] = {}
        self.truth: dict[str, tuple[object, object, object]] = {}

    def add(self, row: Sequence[object], where: str) -> None:
        c = self.columns
        case_id = _text(row[c.case])
        events = self.cases.setdefault(case_id, [])
        if case_id not in self.truth:
            label, kind, description = (None if i is None else row[i] for i in c.labels)
            self.truth[case_id] = (label, kind, description)
        activity = _text(row[c.activity])
        if activity in _MARKERS:
            return
        if not activity:
            raise MalformedLogError(f"{where}, column {c.names[c.activity]!r}: empty activity")
        written = self._read(row, c.position, _position, where)
        position = len(events) if written is None else written
        timestamp = self._read(row, c.timestamp, self._timestamp, where)
        if self.text:  # every cell a string: the cheap test, as CSV rows are most of a read
            attributes = {n: row[i] for i, n in c.attributes if row[i] and row[i] not in _MARKERS}
        else:
            attributes = {name: _attribute(row[i]) for i, name in c.attributes if _kept(row[i])}
        event = StreamingEvent(case_id, activity, timestamp, attributes)
        events.append((position, timestamp, event))

    def _timestamp(self, value: object) -> float | None:
        return _timestamp(value, self.timestamp_format)

    def _read(
        self, row: Sequence[object], index: int | None, parse: Callable[[object], _T], where: str
    ) -> _T | None:
        if index is None:
            return None
        try:
            return parse(row[index])
        except MalformedLogError as exc:
            name = self.columns.names[index]
            raise MalformedLogError(f"{where}, column {name!r}: {exc}") from None

    def traces(self) -> list[Trace]:
        traces = []
        for case_id, rows in self.cases.items():
            ordered = [event for *_, event in self._ordered(rows)]
            label_value, type_value, description = self.truth[case_id]
            try:
                label = parse_label(label_value)
            except MalformedLogError as exc:
                raise MalformedLogError(f"case {case_id!r}: {exc}") from None
            kind = anomaly_type_of(_text(type_value)) if label else None
            blamed = anomalous_positions(kind, _text(description), len(ordered)) if kind else ()
            traces.append(Trace(case_id, ordered, label, kind, blamed))
        return traces

    def _ordered(self, rows: list[_Row]) -> list[_Row]:
        if self.columns.position is not None:
            return sorted(rows, key=lambda r: r[0])
        if all(r[1] is not None for r in rows):
            return sorted(rows, key=lambda r: r[1] or 0.0)  # stable: ties keep file order
        return rows


def anomalous_positions(
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
