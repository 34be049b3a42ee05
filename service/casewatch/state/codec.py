"""Compact, versioned binary encoding of one case's state, for the state changelog.

Layout (little endian), version 1::

    header   u8 version, u16 activities T, u16 ring K,
             u8 attributes E, u8 numeric A, u8 categorical C
    scalars  i64 n_events, u32 unknown, f64 first_time, f64 last_time, f64 last_seen,
             i32 partition, i64 first_offset, i64 last_offset
    counts   u16 nnz, then nnz x (u16 activity, u32 count)       -- sparse: most counts are 0
    ring     K x u16 activity ids (slot order, as stored)
    attrs    K x E x u16 attribute ids
    case     A x f32 numeric, C x i32 categorical

Scalars and arrays follow the store's column declaration (``casewatch.state.columns``), each cell
written as its column's ``wire`` type. The header's sizes let a reader refuse a record written
for a model of another shape instead of misreading it.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Any

import numpy as np

from casewatch.errors import CasewatchError
from casewatch.state.columns import COLUMNS, StoreShape
from casewatch.state.store import CaseStore

VERSION = 1
_HEADER = struct.Struct("<BHHBBB")
_SCALAR_COLUMNS = tuple(c.name for c in COLUMNS if c.scalar)
_SCALARS = struct.Struct("<" + "".join(c.wire for c in COLUMNS if c.scalar))
_ARRAYS = tuple((c.name, np.dtype("<" + c.wire), c.sparse) for c in COLUMNS if not c.scalar)
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


def _sparse_dtype(wire: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype([("index", _SPARSE_INDEX), ("value", wire)])


def encode_row(store: CaseStore, row: int) -> bytes:
    parts = [
        _HEADER.pack(VERSION, *_header(store.shape)),
        _SCALARS.pack(*(getattr(store, name).item(row) for name in _SCALAR_COLUMNS)),
    ]
    for name, wire, sparse in _ARRAYS:
        cells = getattr(store, name)[row]
        if sparse:
            nonzero = np.flatnonzero(cells)
            pairs = np.empty(nonzero.size, dtype=_sparse_dtype(wire))
            pairs["index"] = nonzero
            pairs["value"] = cells[nonzero]
            parts += (_NNZ.pack(nonzero.size), pairs.tobytes())
        else:
            parts.append(cells.astype(wire).tobytes())
    return b"".join(parts)


def decode_state(shape: StoreShape, payload: bytes) -> dict[str, Any]:
    """The cells of one case, by column name, as ``CaseStore.restore`` takes them."""
    try:
        version, *sizes = _HEADER.unpack_from(payload, 0)
    except struct.error:
        raise StateFormatError("changelog record is truncated") from None
    if version != VERSION:
        raise StateFormatError(f"changelog record version {version}, this build reads {VERSION}")
    expected = _header(shape)
    if tuple(sizes) != expected:
        raise StateFormatError(
            f"changelog record shape {tuple(sizes)} does not match the model's {expected}"
        )
    try:
        return _decode_cells(shape, payload)
    except (struct.error, ValueError):
        raise StateFormatError("changelog record is truncated") from None
    except IndexError:
        raise StateFormatError("changelog record counts an activity the model lacks") from None


@lru_cache(maxsize=8)
def _array_shapes(shape: StoreShape) -> tuple[tuple[int, ...], ...]:
    by_name = {c.name: c for c in COLUMNS}
    return tuple(by_name[name].row_shape(shape) for name, _, _ in _ARRAYS)


def _decode_cells(shape: StoreShape, payload: bytes) -> dict[str, Any]:
    offset = _HEADER.size
    cells: dict[str, Any] = dict(
        zip(_SCALAR_COLUMNS, _SCALARS.unpack_from(payload, offset), strict=True)
    )
    offset += _SCALARS.size
    for (name, wire, sparse), row_shape in zip(_ARRAYS, _array_shapes(shape), strict=True):
        if sparse:
            (nnz,) = _NNZ.unpack_from(payload, offset)
            offset += _NNZ.size
            pairs = np.frombuffer(payload, dtype=_sparse_dtype(wire), count=nnz, offset=offset)
            offset += pairs.nbytes
            dense = np.zeros(row_shape, dtype=wire)
            dense[pairs["index"].astype(np.int64)] = pairs["value"]
            cells[name] = dense
        else:
            size = int(np.prod(row_shape))
            values = np.frombuffer(payload, dtype=wire, count=size, offset=offset)
            offset += values.nbytes
            cells[name] = values.reshape(row_shape)
    return cells
