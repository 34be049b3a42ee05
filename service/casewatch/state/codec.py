"""Compact, versioned binary encoding of one case's state, for the state changelog.

Layout (little endian), version 2::

    header   u8 version, u16 activities T, u16 ring K,
             u8 attributes E, u8 numeric A, u8 categorical C
    scalars  i64 n_events, u32 unknown, f64 first_time, f64 last_time, f64 last_seen,
             i32 partition, i64 first_offset, i64 last_offset,
             u8 anomalous_streak, bool alerted                  -- since version 2
    counts   u16 nnz, then nnz x (u16 activity, u32 count)       -- sparse: most counts are 0
    ring     K x u16 activity ids (slot order, as stored)
    attrs    K x E x u16 attribute ids
    case     A x f32 numeric, C x i32 categorical

Scalars and arrays follow the store's column declaration (``casewatch.state.columns``), each cell
written as its column's ``wire`` type. The header's sizes let a reader refuse a record written
for a model of another shape instead of misreading it. Version 1 records (written before the
alert state existed) still decode: the columns they lack read as empty (no streak, not alerted).
"""

from __future__ import annotations

import itertools
import math
import struct
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from casewatch.errors import CasewatchError
from casewatch.state.columns import COLUMNS, StoreShape
from casewatch.state.store import CaseStore, IntArray

VERSION = 2
_HEADER = struct.Struct("<BHHBBB")
# Per readable version: the struct of its scalar block, and the empty value of each scalar
# column it lacks, by position among the scalars.
_SCALARS_OF: dict[int, tuple[struct.Struct, tuple[tuple[int, Any], ...]]] = {
    version: (
        struct.Struct("<" + "".join(c.wire for c in COLUMNS if c.scalar and c.since <= version)),
        tuple(
            (i, c.fill(StoreShape(0, 1)))
            for i, c in enumerate(c for c in COLUMNS if c.scalar)
            if c.since > version
        ),
    )
    for version in range(1, VERSION + 1)
}
_NNZ = struct.Struct("<H")
_SPARSE_INDEX = np.dtype("<u2")


class StateFormatError(CasewatchError):
    """A changelog record that cannot be applied to this store."""


def _header(shape: StoreShape) -> tuple[int, ...]:
    return (
        shape.activities,
        shape.sequence_length,
        len(shape.event_attribute_sizes),
        shape.numeric_case_attributes,
        shape.categorical_case_attributes,
    )


def _sparse_dtype(wire: str) -> np.dtype[Any]:
    return np.dtype([("index", _SPARSE_INDEX), ("value", "<" + wire)])


# Scalars precede arrays in the declaration (``casewatch.state.columns``), as in a record.
_SCALAR_COUNT = sum(c.scalar for c in COLUMNS)
# The scalar block of a record as one packed numpy record (the same bytes as the current
# version's scalar struct).
_SCALAR_RECORD = np.dtype([(c.name, "<" + c.wire) for c in COLUMNS if c.scalar])
# (wire type, sparse) of each array column; a sparse one's type is the (index, value) pair.
_ARRAYS = tuple(
    (_sparse_dtype(c.wire) if c.sparse else np.dtype("<" + c.wire), c.sparse)
    for c in COLUMNS
    if not c.scalar
)


def encode_row(store: CaseStore, row: int) -> bytes:
    return encode_rows(store, np.array([row], dtype=np.int64))[0]


def encode_rows(store: CaseStore, rows: IntArray) -> list[bytes]:
    """One record per row. Each column is gathered and converted for all rows at once; a
    record is then the join of its slices, which costs a fraction of converting row by row."""
    if rows.size == 0:
        return []
    columns = store.columns()
    scalars = np.empty(rows.size, dtype=_SCALAR_RECORD)
    for name, column in zip(_SCALAR_RECORD.names or (), columns[:_SCALAR_COUNT], strict=True):
        scalars[name] = column[rows]
    pieces = [
        itertools.repeat(_HEADER.pack(VERSION, *_header(store.shape))),
        _slices(scalars.tobytes(), _SCALAR_RECORD.itemsize, rows.size),
    ]
    for column, (wire, sparse) in zip(columns[_SCALAR_COUNT:], _ARRAYS, strict=True):
        cells = column[rows]
        if sparse:
            pieces.append(_sparse_pieces(cells, wire))
        elif cells.size:
            block = cells.astype(wire, copy=False).tobytes()
            pieces.append(_slices(block, len(block) // rows.size, rows.size))
    # The header repeats without end: the row pieces decide how many records there are.
    return [b"".join(parts) for parts in zip(*pieces, strict=False)]


def _slices(block: bytes, size: int, count: int) -> list[bytes]:
    return [block[start : start + size] for start in range(0, size * count, size)]


def _sparse_pieces(cells: npt.NDArray[Any], wire: np.dtype[Any]) -> list[bytes]:
    """Per row: u16 count of its non-zero cells, then their (index, value) pairs."""
    row_of, index = np.nonzero(cells)  # row-major: each row's cells in ascending index order
    pairs = np.empty(row_of.size, dtype=wire)
    pairs["index"] = index
    pairs["value"] = cells[row_of, index]
    block = pairs.tobytes()
    per_row = np.bincount(row_of, minlength=len(cells)).tolist()
    bounds = np.concatenate(([0], np.cumsum(per_row) * wire.itemsize)).tolist()
    pack = _NNZ.pack
    return [
        pack(nnz) + block[start:end]
        for nnz, start, end in zip(per_row, bounds, bounds[1:], strict=False)
    ]


def decode_state(shape: StoreShape, payload: bytes) -> tuple[Any, ...]:
    """The cells of one case, one value per column in declaration order, as
    ``CaseStore.restore`` takes them."""
    try:
        version, *sizes = _HEADER.unpack_from(payload, 0)
    except struct.error:
        raise StateFormatError("changelog record is truncated") from None
    if version not in _SCALARS_OF:
        raise StateFormatError(
            f"changelog record version {version}, this build reads 1 to {VERSION}"
        )
    expected = _header(shape)
    if tuple(sizes) != expected:
        raise StateFormatError(
            f"changelog record shape {tuple(sizes)} does not match the model's {expected}"
        )
    try:
        return _decode_cells(shape, payload, version)
    except (struct.error, ValueError):
        raise StateFormatError("changelog record is truncated") from None
    except IndexError:
        raise StateFormatError("changelog record counts an activity the model lacks") from None


@lru_cache(maxsize=8)
def _array_plan(shape: StoreShape) -> tuple[tuple[np.dtype[Any], Any, Any, int], ...]:
    """Per array column: wire type; for a sparse column its cells per case and value type, for
    a dense one the shape to give its flat cells (None when flat) and their byte count."""
    plan: list[tuple[np.dtype[Any], Any, Any, int]] = []
    arrays = (c for c in COLUMNS if not c.scalar)
    for (wire, sparse), column in zip(_ARRAYS, arrays, strict=True):
        cells = column.row_shape(shape)
        if sparse:
            plan.append((wire, wire["value"], cells, wire.itemsize))
        else:
            plan.append(
                (wire, None, cells if len(cells) > 1 else None, math.prod(cells) * wire.itemsize)
            )
    return tuple(plan)


def _decode_cells(shape: StoreShape, payload: bytes, version: int) -> tuple[Any, ...]:
    scalars, missing = _SCALARS_OF[version]
    cells: list[Any] = list(scalars.unpack_from(payload, _HEADER.size))
    for position, empty in missing:
        cells.insert(position, empty)
    offset = _HEADER.size + scalars.size
    # Views of one byte array: slicing costs a fraction of a frombuffer call per column.
    data = np.frombuffer(payload, dtype=np.uint8)
    length = len(data)
    for wire, sparse_value, cell_shape, size in _array_plan(shape):
        if sparse_value is None:
            end = offset + size
        else:
            (nnz,) = _NNZ.unpack_from(payload, offset)
            offset += _NNZ.size
            end = offset + nnz * size
        if end > length:
            raise ValueError("changelog record is truncated")
        values = data[offset:end].view(wire)
        offset = end
        if sparse_value is not None:
            dense = np.zeros(cell_shape, dtype=sparse_value)
            dense[values["index"]] = values["value"]
            cells.append(dense)
        else:
            # A flat row is what the store's column takes already.
            cells.append(values if cell_shape is None else values.reshape(cell_shape))
    return tuple(cells)
