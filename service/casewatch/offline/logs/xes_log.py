"""XES event logs (IEEE 1849): typed and nested attributes, trace attributes as case attributes.

- Values are typed: ``int``, ``float``, ``boolean``, ``date`` (epoch seconds, like timestamps),
  ``string`` and ``id`` (text).
- Nested attributes (a ``container``, or meta-attributes under any attribute) become dotted
  names: ``<container key="address"><string key="city" .../></container>`` is ``address.city``.
- ``list`` attributes are skipped, and the reader says so once per key: a list holds any number
  of values, which no per-event feature can take.
- Trace attributes other than the case id and the ground truth reach every event of the trace
  as ``case:<key>``, the name pm4py gives them in a table, so an XES log and its CSV export read
  alike.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from xml.parsers import expat

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

__all__ = ["Iterparse", "read_xes"]

# ``xml.etree.ElementTree.iterparse`` and ``lxml.etree.iterparse`` both fit.
Iterparse = Callable[..., Iterable[tuple[str, Any]]]

_VALUED = frozenset({"string", "date", "int", "float", "boolean", "id"})
_LISTS = frozenset({"list", "values"})
_TRUTH = frozenset({"concept:name", "label", "anomaly_type", "anomaly_description"})


def _typed(kind: str, value: str) -> Any:
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(value)
        return lowered == "true"
    if kind == "date":
        return parse_time(value)
    return value


class _ContentError(MalformedLogError):
    """A value that cannot be read, at the ``event``-th event (0-based; None: the trace itself)
    of the ``trace``-th trace; ``read_xes`` finds its line."""

    def __init__(self, trace: int, event: int | None, detail: str) -> None:
        super().__init__(detail)
        self.trace, self.event, self.detail = trace, event, detail


class _Found(Exception):
    pass


def _line_of(stream: io.BufferedIOBase, trace: int, event: int | None) -> int | None:
    """The line where that trace or event starts: a second, cheap pass, on the error path only.

    ElementTree's elements carry no line numbers, and counting lines on the fast path would cost
    every read for the sake of the one that fails.
    """
    parser = expat.ParserCreate()
    seen = {"trace": -1, "event": -1}

    def start(name: str, _: object) -> None:
        local = name.rpartition(":")[2]
        if local == "trace":
            seen["trace"] += 1
            seen["event"] = -1
            if seen["trace"] == trace and event is None:
                raise _Found
        elif local == "event" and seen["trace"] == trace:
            seen["event"] += 1
            if seen["event"] == event:
                raise _Found

    parser.StartElementHandler = start
    try:
        stream.seek(0)
        parser.ParseFile(stream)
    except _Found:
        return int(parser.CurrentLineNumber)
    except (OSError, expat.ExpatError):
        return None
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _XesReader:
    """Builds traces from the ends of ``event`` and ``trace`` elements, walking their children."""

    def __init__(self, notes: list[str] | None) -> None:
        self.notes = notes
        self.skipped: set[str] = set()
        self.events: list[StreamingEvent] = []
        self.traces: list[Trace] = []

    def attributes(self, element: Any, prefix: str, into: dict[str, tuple[str, Any]]) -> None:
        """Typed values of the attribute children of ``element``, nested ones as dotted names."""
        for child in element:
            tag = _local(child.tag)
            key = child.get("key")
            if key is None or tag in ("event", "trace"):
                continue
            name = prefix + key
            if tag in _LISTS:
                self._skip(name)
                continue
            value = child.get("value")
            if tag in _VALUED and value is not None:
                into[name] = (tag, self._typed(tag, name, value))
            if len(child):
                self.attributes(child, name + ".", into)

    def _skip(self, name: str) -> None:
        if name not in self.skipped:
            self.skipped.add(name)
            if self.notes is not None:
                self.notes.append(f"list attribute {name!r} skipped: it has no single value")

    def _typed(self, tag: str, name: str, value: str) -> Any:
        try:
            return _typed(tag, value)
        except (ValueError, MalformedLogError):
            detail = f"attribute {name!r}: invalid {tag} {value!r}"
            raise _ContentError(len(self.traces), len(self.events), detail) from None

    def event(self, element: Any) -> None:
        keys: dict[str, tuple[str, Any]] = {}
        self.attributes(element, "", keys)
        kind, name = keys.pop("concept:name", ("", None))
        if not isinstance(name, str) or kind != "string":
            detail = "event has no string 'concept:name'"
            raise _ContentError(len(self.traces), len(self.events), detail)
        stamp_kind, stamp = keys.pop("time:timestamp", ("", None))
        timestamp = stamp if stamp_kind == "date" else None
        attributes = {k: v for k, (_, v) in keys.items()}
        # The case id is filled in once the trace's own attributes have been read.
        self.events.append(StreamingEvent("", name, timestamp, attributes))

    def trace(self, element: Any) -> None:
        typed: dict[str, tuple[str, Any]] = {}
        self.attributes(element, "", typed)
        keys = {k: v for k, (_, v) in typed.items()}
        case_id = keys.get("concept:name")
        if not isinstance(case_id, str):
            detail = "trace has no string 'concept:name'"
            raise _ContentError(len(self.traces), None, detail)
        label = parse_label(keys.get("label"))
        kind = anomaly_type_of(keys.get("anomaly_type")) if label else None
        case_attributes = {f"case:{k}": v for k, v in keys.items() if k not in _TRUTH}
        for event in self.events:
            event.case_id = case_id
            if case_attributes:
                event.attributes = {**case_attributes, **event.attributes}
        self.traces.append(Trace(case_id, self.events, label, kind, ()))
        self.events = []


def read_xes(
    stream: io.BufferedIOBase,
    progress: Progress | None,
    *,
    notes: list[str] | None = None,
    iterparse: Iterparse | None = None,
) -> list[Trace]:
    """Read an XES log; ``notes`` collects what was skipped, with the reason."""
    if iterparse is None:
        iterparse = default_iterparse()
    reader = _XesReader(notes)
    try:
        _read(stream, progress, iterparse, reader)
    except _ContentError as exc:
        place = f"trace {exc.trace + 1}" + ("" if exc.event is None else f", event {exc.event + 1}")
        line = _line_of(stream, exc.trace, exc.event)
        where = place if line is None else f"line {line} ({place})"
        raise MalformedLogError(f"{where}: {exc.detail}") from None
    return reader.traces


def _read(
    stream: io.BufferedIOBase, progress: Progress | None, iterparse: Iterparse, reader: _XesReader
) -> None:
    count = 0
    # Only ends: an event's or a trace's attributes are complete when it ends, and are read from
    # its children then, which costs a fraction of a callback per element.
    for _, element in iterparse(stream, events=("end",)):
        tag = element.tag
        if tag == "event" or tag.endswith("}event"):
            reader.event(element)
            element.clear()
            count += 1
            report_progress(progress, count)
        elif tag == "trace" or tag.endswith("}trace"):
            reader.trace(element)
            element.clear()


def default_iterparse() -> Iterparse:
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    return ET.iterparse
