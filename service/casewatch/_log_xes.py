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
from collections.abc import Callable, Iterable, Iterator
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


class _XesReader:
    """Walks start/end events; the stack holds (tag, key) of every open element."""

    def __init__(self, notes: list[str] | None) -> None:
        self.notes = notes
        self.skipped: set[str] = set()
        self.stack: list[tuple[str, str | None]] = []
        self.owner: int | None = None  # stack index of the open event, else of the open trace
        self.trace_keys: dict[str, tuple[str, Any]] = {}
        self.event_keys: dict[str, tuple[str, Any]] = {}
        self.events: list[StreamingEvent] = []
        self.traces: list[Trace] = []

    def start(self, tag: str, element: Any) -> None:
        if tag == "trace":
            self.owner, self.trace_keys, self.events = len(self.stack), {}, []
        elif tag == "event" and self.owner is not None:
            self.owner, self.event_keys = len(self.stack), {}
        self.stack.append((tag, element.get("key")))

    def end(self, tag: str, element: Any) -> bool:
        """Handle an element's end; True when it was an event."""
        _, key = self.stack.pop()
        if tag == "event" and self.stack and self.stack[-1][0] == "trace":
            self.events.append(self._event(element))
            self.owner = len(self.stack) - 1
            return True
        if tag == "trace":
            self.traces.append(self._trace(element))
            self.owner = None
        elif key is not None and self.owner is not None and len(self.stack) > self.owner:
            self._attribute(tag, key, element)
        return False

    def _attribute(self, tag: str, key: str, element: Any) -> None:
        assert self.owner is not None
        enclosing = self.stack[self.owner + 1 :]
        path = [k for _, k in enclosing if k is not None] + [key]
        name = ".".join(path)
        if tag in _LISTS or any(t in _LISTS for t, _ in enclosing):
            if tag == "list" and name not in self.skipped:
                self.skipped.add(name)
                if self.notes is not None:
                    self.notes.append(f"list attribute {name!r} skipped: it has no single value")
            return
        value = element.get("value")
        if tag not in _VALUED or value is None:
            return
        try:
            typed = _typed(tag, value)
        except (ValueError, MalformedLogError):
            where = _where(element, len(self.traces), len(self.events))
            detail = f"attribute {name!r}: invalid {tag} {value!r}"
            raise MalformedLogError(f"{where}: {detail}") from None
        owner_tag = self.stack[self.owner][0]
        keys = self.event_keys if owner_tag == "event" else self.trace_keys
        keys[name] = (tag, typed)

    def _event(self, element: Any) -> StreamingEvent:
        keys = self.event_keys
        kind, name = keys.pop("concept:name", ("", None))
        if not isinstance(name, str) or kind != "string":
            where = _where(element, len(self.traces), len(self.events))
            raise MalformedLogError(f"{where}: event has no string 'concept:name'")
        stamp_kind, stamp = keys.pop("time:timestamp", ("", None))
        timestamp = stamp if stamp_kind == "date" else None
        attributes = {k: v for k, (_, v) in keys.items()}
        # The case id is filled in once the trace's own attributes have been read.
        return StreamingEvent("", name, timestamp, attributes)

    def _trace(self, element: Any) -> Trace:
        keys = {k: v for k, (_, v) in self.trace_keys.items()}
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
        return Trace(case_id, self.events, label, kind, ())


def _parse(stream: io.BufferedIOBase, iterparse: Iterparse) -> Iterator[tuple[str, str, Any]]:
    for action, element in iterparse(stream, events=("start", "end")):
        yield action, element.tag.rpartition("}")[2], element


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
    for action, tag, element in _parse(stream, iterparse):
        if action == "start":
            reader.start(tag, element)
        elif reader.end(tag, element):
            count += 1
            report_progress(progress, count)
            element.clear()
        elif tag == "trace":
            element.clear()
    return reader.traces


def default_iterparse() -> Iterparse:
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    return ET.iterparse
