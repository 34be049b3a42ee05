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


def _where(element: Any, traces: int, events: int | None) -> str:
    line = getattr(element, "sourceline", None)  # lxml knows it; the standard library does not
    place = f"trace {traces + 1}" + ("" if events is None else f", event {events + 1}")
    return f"line {line} ({place})" if line else place


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
                into[name] = (tag, self._typed(tag, name, value, child))
            if len(child):
                self.attributes(child, name + ".", into)

    def _skip(self, name: str) -> None:
        if name not in self.skipped:
            self.skipped.add(name)
            if self.notes is not None:
                self.notes.append(f"list attribute {name!r} skipped: it has no single value")

    def _typed(self, tag: str, name: str, value: str, element: Any) -> Any:
        try:
            return _typed(tag, value)
        except (ValueError, MalformedLogError):
            where = _where(element, len(self.traces), len(self.events))
            detail = f"attribute {name!r}: invalid {tag} {value!r}"
            raise MalformedLogError(f"{where}: {detail}") from None

    def event(self, element: Any) -> None:
        keys: dict[str, tuple[str, Any]] = {}
        self.attributes(element, "", keys)
        kind, name = keys.pop("concept:name", ("", None))
        if not isinstance(name, str) or kind != "string":
            where = _where(element, len(self.traces), len(self.events))
            raise MalformedLogError(f"{where}: event has no string 'concept:name'")
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
            where = _where(element, len(self.traces), None)
            raise MalformedLogError(f"{where}: trace has no string 'concept:name'")
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
    return reader.traces


def default_iterparse() -> Iterparse:
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    return ET.iterparse
