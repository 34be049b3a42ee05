"""The case store's columns, declared once.

The store allocates, grows, resets and measures its numpy columns from ``COLUMNS``; the
changelog codec writes a case's cells in the same declaration's order, each as its column's
``wire`` type. Store and codec therefore cannot disagree on what a case holds.

Scalars (one cell per case) come first, in the order a changelog record packs them; per-case
arrays follow in the order the record appends them. Adding, removing or reordering a column
changes the record layout, which calls for a new ``casewatch.state.codec.VERSION``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class StoreShape:
    """Sizes the columns are built for; they come from the model contract."""

    activities: int
    sequence_length: int
    event_attribute_sizes: tuple[int, ...] = ()
    numeric_case_attributes: int = 0
    categorical_case_attributes: int = 0

    @property
    def padding_id(self) -> int:
        """Sequence id of an empty ring slot (and of the case start)."""
        return self.activities + 1

    @property
    def unknown_id(self) -> int:
        return self.activities

    @property
    def attribute_padding(self) -> npt.NDArray[np.int64]:
        """Per-event attribute id of an empty ring slot, one per attribute (its size + 1)."""
        return np.array([size + 1 for size in self.event_attribute_sizes], dtype=np.int64)


def id_dtype(largest: int) -> np.dtype[Any]:
    """The narrowest unsigned type holding ids up to ``largest``."""
    return np.dtype(np.uint8 if largest < 2**8 else np.uint16 if largest < 2**16 else np.uint32)


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its in-memory type, the value of an empty row and its changelog type."""

    name: str
    dtype: Callable[[StoreShape], np.dtype[Any]]
    fill: Callable[[StoreShape], Any]
    wire: str  # struct code of one cell in a changelog record (little endian)
    # Shape of one case's cells; None for a scalar column (one cell per case).
    cells: Callable[[StoreShape], tuple[int, ...]] | None = None
    sparse: bool = False  # recorded as (u16 index, value) pairs of its non-zero cells
    # The changelog format version that added the column: older records lack its cells, which
    # then read as the empty value.
    since: int = 1

    @property
    def scalar(self) -> bool:
        return self.cells is None

    def row_shape(self, shape: StoreShape) -> tuple[int, ...]:
        return () if self.cells is None else self.cells(shape)


def _fixed(dtype: type[np.generic]) -> Callable[[StoreShape], np.dtype[Any]]:
    fixed = np.dtype(dtype)
    return lambda _: fixed


def _constant(value: float) -> Callable[[StoreShape], float]:
    return lambda _: value


COLUMNS: tuple[Column, ...] = (
    # name, in-memory type, value of an empty row, changelog type[, cells per case]
    # uint32: four billion events per case is beyond any process; int64 would cost 4 B/case.
    Column("n_events", _fixed(np.uint32), _constant(0), "q"),
    Column("unknown", _fixed(np.uint32), _constant(0), "I"),
    Column("first_time", _fixed(np.float64), _constant(np.nan), "d"),
    Column("last_time", _fixed(np.float64), _constant(np.nan), "d"),
    Column("last_seen", _fixed(np.float64), _constant(0.0), "d"),
    Column("partition", _fixed(np.int32), _constant(-1), "i"),
    Column("first_offset", _fixed(np.int64), _constant(-1), "q"),
    Column("last_offset", _fixed(np.int64), _constant(-1), "q"),
    # Alert state (``casewatch.scoring.alerts``): consecutive anomalous evaluations, saturating
    # at ``STREAK_MAX``, and whether the case has raised its alert.
    Column("anomalous_streak", _fixed(np.uint8), _constant(0), "B", since=2),
    Column("alerted", _fixed(np.bool_), _constant(False), "?", since=2),
    # uint16 halves the widest column; counts saturate at its maximum (``COUNT_MAX``).
    Column("counts", _fixed(np.uint16), _constant(0), "I", lambda s: (s.activities,), sparse=True),
    Column(
        "ring",
        lambda s: id_dtype(s.padding_id),
        lambda s: s.padding_id,
        "H",
        lambda s: (s.sequence_length,),
    ),
    Column(
        "attribute_ring",
        lambda s: id_dtype(int(s.attribute_padding.max(initial=0))),
        lambda s: s.attribute_padding,
        "H",
        lambda s: (s.sequence_length, len(s.event_attribute_sizes)),
    ),
    Column(
        "case_numeric",
        _fixed(np.float32),
        _constant(np.nan),
        "f",
        lambda s: (s.numeric_case_attributes,),
    ),
    Column(
        "case_categorical",
        _fixed(np.int32),
        _constant(-1),
        "i",
        lambda s: (s.categorical_case_attributes,),
    ),
)

COLUMN_NAMES = frozenset(column.name for column in COLUMNS)

# Activity counts saturate here: a case with more than 65535 events of one activity is already
# far outside anything a model was trained on.
COUNT_MAX = int(np.iinfo(np.uint16).max)
# The anomalous streak saturates here; an alert needs at most this many in a row.
STREAK_MAX = int(np.iinfo(np.uint8).max)
