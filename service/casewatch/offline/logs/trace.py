"""Traces read from historical logs, and the parsing helpers every log format shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from casewatch.events import StreamingEvent

Progress = Callable[[int], None]

PROGRESS_EVERY = 10_000
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


class MalformedLogError(ValueError):
    """Content error raised by the format readers; ``read_log`` prefixes the file name."""


def report_progress(progress: Progress | None, count: int) -> None:
    if progress is not None and count % PROGRESS_EVERY == 0:
        progress(count)


def parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedLogError(f"invalid timestamp {text!r}") from None
    # A timestamp without an offset is taken as UTC so a replay does not depend on the host zone.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_label(value: object) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    label = _LABELS.get(str(value).strip().lower())
    if label is None:
        raise MalformedLogError(f"unknown label {value!r} (expected normal or anomalous)")
    return label


def anomaly_type_of(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value
