"""Event timestamps: epoch seconds or ISO-8601, always finite, always UTC-based."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Final

from casewatch.errors import InvalidEventError

BAD_TIMESTAMP: Final = "bad_timestamp"


def from_datetime(value: datetime) -> float:
    # Timestamps without an offset are taken as UTC, never as the daemon's local time.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def parse_timestamp_text(text: str, field: str) -> float:
    try:
        return from_datetime(datetime.fromisoformat(text.strip()))
    except ValueError:
        pass
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidEventError(
            BAD_TIMESTAMP, f"{field!r} is neither ISO-8601 nor epoch seconds: {text[:64]!r}"
        ) from None
    return finite_timestamp(seconds, field)


def finite_timestamp(seconds: float, field: str) -> float:
    if not math.isfinite(seconds):
        raise InvalidEventError(BAD_TIMESTAMP, f"{field!r} is not a finite number")
    return seconds


def numeric_timestamp(value: float, field: str) -> float:
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidEventError(BAD_TIMESTAMP, f"{field!r} is beyond float range") from None
    return finite_timestamp(seconds, field)
