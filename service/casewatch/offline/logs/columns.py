"""Which columns of a tabular log (CSV, Parquet) hold the case, the activity and the timestamp.

Two layouts are known: the pm4py/XES one (``case:concept:name``, ``concept:name``,
``time:timestamp``) and casewatch's own (``case_id``, ``activity_name``, ``timestamp``,
``event_position``). The layout is chosen as a whole by the case column it finds, pm4py first:
a log in casewatch's layout may carry ``concept:name`` as an ordinary attribute (the BPIC logs
do), so choosing column by column would mix the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from casewatch.offline.logs.trace import MalformedLogError

__all__ = ["LABEL_COLUMNS", "LogColumns", "ResolvedColumns"]

LABEL_COLUMNS = ("label", "anomaly_type", "anomaly_description")


@dataclass(frozen=True, slots=True)
class LogColumns:
    """Column names to read; ``None`` takes the name of the layout the header matches.

    ``timestamp_format`` is a ``strptime`` format for timestamps written as text in another form
    than ISO-8601 (``%d/%m/%Y %H:%M``, say); without an offset in it, times are UTC.
    """

    case: str | None = None
    activity: str | None = None
    timestamp: str | None = None
    position: str | None = None
    timestamp_format: str | None = None


@dataclass(frozen=True, slots=True)
class _Layout:
    case: str
    activity: str
    timestamp: str
    position: str | None


_PM4PY = _Layout("case:concept:name", "concept:name", "time:timestamp", None)
_CASEWATCH = _Layout("case_id", "activity_name", "timestamp", "event_position")
_LAYOUTS = (_PM4PY, _CASEWATCH)


@dataclass(frozen=True, slots=True)
class ResolvedColumns:
    """Header indices of the roles; ``None`` where the log has no such column."""

    case: int
    activity: int
    timestamp: int | None
    position: int | None
    labels: tuple[int | None, int | None, int | None]
    attributes: tuple[tuple[int, str], ...]
    names: tuple[str, ...]


def resolve(header: Sequence[str], wanted: LogColumns | None = None) -> ResolvedColumns:
    """Map the roles onto the header, or say which column is missing."""
    wanted = wanted or LogColumns()
    index = {name: i for i, name in reversed(list(enumerate(header)))}
    layout = _layout(index, wanted)

    def find(given: str | None, default: str | None, role: str, *, required: bool) -> int | None:
        name = given or default
        if name is not None and name in index:
            return index[name]
        if given is not None or required:
            raise MalformedLogError(f"missing {role} column {name!r}{_known(header)}")
        return None

    case = find(wanted.case, layout.case, "case", required=True)
    activity = find(wanted.activity, layout.activity, "activity", required=True)
    timestamp = find(wanted.timestamp, layout.timestamp, "timestamp", required=False)
    position = find(wanted.position, layout.position, "position", required=False)
    assert case is not None and activity is not None
    label, kind, description = (index.get(name) for name in LABEL_COLUMNS)
    taken = {case, activity, timestamp, position, label, kind, description}
    attributes = tuple((i, name) for i, name in enumerate(header) if i not in taken)
    return ResolvedColumns(
        case, activity, timestamp, position, (label, kind, description), attributes, tuple(header)
    )


def _layout(index: dict[str, int], wanted: LogColumns) -> _Layout:
    if wanted.case is not None:
        # A given case column says nothing about the layout; the activity column then decides.
        return next((lay for lay in _LAYOUTS if lay.activity in index), _PM4PY)
    return next((lay for lay in _LAYOUTS if lay.case in index), _PM4PY)


def _known(header: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in list(header)[:8])
    more = ", ..." if len(header) > 8 else ""
    return f" (the header has {shown}{more})"
