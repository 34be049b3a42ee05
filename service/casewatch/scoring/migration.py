"""Carrying open cases over to a model with another activity set, ring length or attributes.

Ids are translated by label: an activity the new model knows keeps its counts and its place in
the ring under its new id; an activity it does not know is counted as unknown (its ring entries
become the unknown id), exactly as if the events had arrived under the new model. Rings are cut
to, or padded up to, the new length keeping the most recent events. Per-event attribute values
are translated the same way; an attribute the old model did not keep reads as missing. Numeric
and categorical case attributes are matched by name. Times, offsets and counts of events carry
over unchanged, so evaluation ids and the changelog stay consistent; so does the alert state, so
a case that alerted under the old model does not alert again under the new one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from casewatch.scoring.contract import Contract
from casewatch.state.store import COUNT_MAX, CaseStore, IntArray, StoreShape


def store_shape(contract: Contract) -> StoreShape:
    return StoreShape(
        activities=len(contract.activities),
        sequence_length=contract.sequence_length,
        event_attribute_sizes=tuple(len(a.values) for a in contract.event_attributes),
        numeric_case_attributes=len(contract.numeric_case_attributes),
        categorical_case_attributes=len(contract.categorical_case_attributes),
    )


def same_state_layout(old: Contract, new: Contract) -> bool:
    """True when a store built for ``old`` means exactly the same to ``new``."""
    return (
        old.activities == new.activities
        and old.sequence_length == new.sequence_length
        and old.event_attributes == new.event_attributes
        and old.case_attributes == new.case_attributes
    )


def _label_map(old: list[str], new: list[str], unknown: int) -> IntArray:
    ids = {label: i for i, label in enumerate(new)}
    return np.array([ids.get(label, unknown) for label in old], dtype=np.int64)


def carry_over(old: CaseStore, old_contract: Contract, new_contract: Contract) -> CaseStore:
    """A store for ``new_contract`` holding every open case of ``old``, in the same LRU order."""
    shape = store_shape(new_contract)
    case_ids = list(old.index)
    new = CaseStore(shape, capacity=max(1024, 2 * len(case_ids)))
    if not case_ids:
        return new
    src = old.rows()
    cells: dict[str, npt.NDArray[Any]] = {name: getattr(old, name)[src] for name in _UNCHANGED}
    cells.update(_activities(old, src, old_contract, new_contract))
    slots = (cells["n_events"][:, None] + np.arange(shape.sequence_length)) % shape.sequence_length
    cells["ring"] = _in_slots(cells.pop("sequence"), slots)
    cells["attribute_ring"] = _in_slots(
        _event_attributes(old, src, old_contract, new_contract), slots
    )
    cells.update(_case_attributes(old, src, old_contract, new_contract))
    new.load(case_ids, cells)
    return new


# Columns whose meaning does not depend on the model.
_UNCHANGED = ("n_events", "first_time", "last_time", "last_seen", "partition",
              "first_offset", "last_offset", "anomalous_streak", "alerted")  # fmt: skip


def _activities(
    old: CaseStore, src: IntArray, old_contract: Contract, new_contract: Contract
) -> dict[str, npt.NDArray[Any]]:
    """Counts by label; what the new model does not know becomes unknown."""
    shape = store_shape(new_contract)
    activity = _label_map(old_contract.activities, new_contract.activities, shape.unknown_id)
    known = activity < shape.unknown_id
    old_counts = old.counts[src].astype(np.int64)
    new_counts = np.zeros((len(src), shape.activities), dtype=np.int64)
    new_counts[:, activity[known]] = old_counts[:, known]
    ring_map = np.concatenate([activity, [shape.unknown_id, shape.padding_id]])
    return {
        "counts": np.minimum(new_counts, COUNT_MAX),
        "unknown": old.unknown[src] + old_counts[:, ~known].sum(axis=1),
        "sequence": _recent(ring_map[old.sequences(src)], shape.sequence_length, shape.padding_id),
    }


def _event_attributes(
    old: CaseStore, src: IntArray, old_contract: Contract, new_contract: Contract
) -> IntArray:
    """Per-event attributes, value by value; unknown and missing keep their meaning."""
    length = new_contract.sequence_length
    old_attributes = {a.name: (j, a.values) for j, a in enumerate(old_contract.event_attributes)}
    old_ids = old.event_attributes(src) if old_contract.event_attributes else None
    columns = []
    for attribute in new_contract.event_attributes:
        size = len(attribute.values)
        column = np.full((len(src), length), size + 1, dtype=np.int64)
        if attribute.name in old_attributes and old_ids is not None:
            k, values = old_attributes[attribute.name]
            value_map = np.concatenate(
                [_label_map(values, attribute.values, size), [size, size + 1]]
            )
            column = _recent(value_map[old_ids[:, :, k]], length, size + 1)
        columns.append(column)
    if not columns:
        return np.zeros((len(src), length, 0), dtype=np.int64)
    return np.stack(columns, axis=2)


def _case_attributes(
    old: CaseStore, src: IntArray, old_contract: Contract, new_contract: Contract
) -> dict[str, npt.NDArray[Any]]:
    """Case attributes by name; one the old model did not keep reads as missing."""
    shape = store_shape(new_contract)
    numeric = np.full((len(src), shape.numeric_case_attributes), np.nan, dtype=np.float32)
    old_numeric = {n: i for i, n in enumerate(old_contract.numeric_case_attributes)}
    for i, name in enumerate(new_contract.numeric_case_attributes):
        if name in old_numeric:
            numeric[:, i] = old.case_numeric[src, old_numeric[name]]
    categorical = np.full((len(src), shape.categorical_case_attributes), -1, dtype=np.int32)
    old_categorical = {
        a.name: (i, a.values) for i, a in enumerate(old_contract.categorical_case_attributes)
    }
    for i, case_attribute in enumerate(new_contract.categorical_case_attributes):
        if case_attribute.name in old_categorical:
            k, values = old_categorical[case_attribute.name]
            unknown = len(case_attribute.values)
            # Old ids: 0..C-1 values, C unknown, -1 missing (read through the last entry).
            value_map = np.concatenate(
                [_label_map(values, case_attribute.values, unknown), [unknown, -1]]
            )
            categorical[:, i] = value_map[old.case_categorical[src, k]]
    return {"case_numeric": numeric, "case_categorical": categorical}


def _in_slots(sequence: npt.NDArray[Any], slots: IntArray) -> npt.NDArray[Any]:
    """A right-aligned sequence rearranged into ring slot order (slot j of row i holds
    ``sequence[i, position]`` where ``slots[i, position] == j``)."""
    ring = np.empty_like(sequence)
    ring[np.arange(len(slots))[:, None], slots] = sequence
    return ring


def _recent(sequence: IntArray, length: int, padding: int) -> IntArray:
    """The last ``length`` columns of a right-aligned sequence, left-padded when it is shorter."""
    if sequence.shape[1] >= length:
        return sequence[:, sequence.shape[1] - length :]
    pad = np.full((sequence.shape[0], length - sequence.shape[1]), padding, dtype=sequence.dtype)
    return np.concatenate([pad, sequence], axis=1)
