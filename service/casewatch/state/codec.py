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

The header's sizes let a reader refuse a record written for a model of another shape instead of
misreading it.
"""

from __future__ import annotations

import struct

import numpy as np

from casewatch.errors import CasewatchError
from casewatch.state.store import CaseStore

VERSION = 1
_HEADER = struct.Struct("<BHHBBB")
_SCALARS = struct.Struct("<qIdddiqq")
_NNZ = struct.Struct("<H")
_COUNT_DTYPE = np.dtype([("activity", "<u2"), ("count", "<u4")])


class StateFormatError(CasewatchError):
    """A changelog record that cannot be applied to this store."""


def encode_row(store: CaseStore, row: int) -> bytes:
    shape = store.shape
    counts = store.counts[row]
    nonzero = np.flatnonzero(counts)
    sparse = np.empty(nonzero.size, dtype=_COUNT_DTYPE)
    sparse["activity"] = nonzero
    sparse["count"] = counts[nonzero]
    return b"".join(
        (
            _HEADER.pack(
                VERSION,
                shape.activities,
                shape.sequence_length,
                len(shape.event_attribute_sizes),
                shape.numeric_case_attributes,
                shape.categorical_case_attributes,
            ),
            _SCALARS.pack(
                int(store.n_events[row]),
                int(store.unknown[row]),
                float(store.first_time[row]),
                float(store.last_time[row]),
                float(store.last_seen[row]),
                int(store.partition[row]),
                int(store.first_offset[row]),
                int(store.last_offset[row]),
            ),
            _NNZ.pack(nonzero.size),
            sparse.tobytes(),
            store.ring[row].astype("<u2").tobytes(),
            store.attribute_ring[row].astype("<u2").tobytes(),
            store.case_numeric[row].astype("<f4").tobytes(),
            store.case_categorical[row].astype("<i4").tobytes(),
        )
    )


def decode_into(store: CaseStore, row: int, payload: bytes) -> None:
    """Write an encoded case state into ``row`` of ``store``."""
    shape = store.shape
    try:
        version, t, k, e, a, c = _HEADER.unpack_from(payload, 0)
    except struct.error:
        raise StateFormatError("changelog record is truncated") from None
    if version != VERSION:
        raise StateFormatError(f"changelog record version {version}, this build reads {VERSION}")
    expected = (
        shape.activities,
        shape.sequence_length,
        len(shape.event_attribute_sizes),
        shape.numeric_case_attributes,
        shape.categorical_case_attributes,
    )
    if (t, k, e, a, c) != expected:
        raise StateFormatError(
            f"changelog record shape {(t, k, e, a, c)} does not match the model's {expected}"
        )
    offset = _HEADER.size
    try:
        scalars = _SCALARS.unpack_from(payload, offset)
        offset += _SCALARS.size
        (nnz,) = _NNZ.unpack_from(payload, offset)
        offset += _NNZ.size
        sparse = np.frombuffer(payload, dtype=_COUNT_DTYPE, count=nnz, offset=offset)
        offset += sparse.nbytes
        ring = np.frombuffer(payload, dtype="<u2", count=k, offset=offset)
        offset += ring.nbytes
        attributes = np.frombuffer(payload, dtype="<u2", count=k * e, offset=offset)
        offset += attributes.nbytes
        numeric = np.frombuffer(payload, dtype="<f4", count=a, offset=offset)
        offset += numeric.nbytes
        categorical = np.frombuffer(payload, dtype="<i4", count=c, offset=offset)
    except (struct.error, ValueError):
        raise StateFormatError("changelog record is truncated") from None
    (
        store.n_events[row],
        store.unknown[row],
        store.first_time[row],
        store.last_time[row],
        store.last_seen[row],
        store.partition[row],
        store.first_offset[row],
        store.last_offset[row],
    ) = scalars
    store.counts[row] = 0
    store.counts[row, sparse["activity"].astype(np.int64)] = sparse["count"]
    store.ring[row] = ring
    store.attribute_ring[row] = attributes.reshape(k, e)
    store.case_numeric[row] = numeric
    store.case_categorical[row] = categorical
