"""Whole columns to their JSON (and id) texts, a few C calls per column instead of one per value.

``casewatch.scoring.record_bytes`` writes each evaluation record from such columns. Every text is
the one ``msgspec.json`` or ``RecordBuilder`` writes for the same value; the shortcuts here hold
for the usual values (plain case ids, event times around now) and fall back to the per-value
call otherwise.
"""

from __future__ import annotations

from itertools import pairwise
from math import isnan
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

json = msgspec.json.Encoder().encode
FloatArray = npt.NDArray[np.float64]

# Where Python's float repr is positional, ``msgspec`` writes the same shortest digits the same
# way; outside (exponents) the two spell exponents differently.
_POSITIONAL = (1e-4, 1e16)
_EXACT_SCALED = 2.0**52


def numbers(values: list[float] | list[int] | list[bool]) -> list[bytes]:
    """Each value's JSON text (NaN and infinities as ``null``, like ``msgspec.json``).

    One encoder call for the whole column: a list of numbers holds no comma but its separators.
    """
    if not values:
        return []
    return json(values)[1:-1].split(b",")


def string_texts(texts: list[str]) -> tuple[list[bytes], list[bytes]]:
    """Each string's JSON text without its quotes, and its UTF-8 bytes.

    One encoder call for the whole column when no string needed escaping (the usual case ids):
    the JSON is then as long as the raw strings and their separators, no string holds the
    ``","`` they are split at, and the two texts are the same bytes.
    """
    body = json(texts)
    if len(body) == len("".join(texts).encode()) + 3 * len(texts) + 1:
        raw = body[2:-2].split(b'","') if texts else []
        return raw, raw
    return [json(text)[1:-1] for text in texts], [text.encode() for text in texts]


def repr_texts(values: FloatArray, json_texts: list[bytes]) -> list[bytes]:
    """Each value as ``RecordBuilder``'s id text spells it: ``repr``, ``None`` for NaN.

    ``json_texts`` (the column's ``numbers``) are those bytes when every value is positional in
    ``repr`` (event times are).
    """
    magnitude = np.abs(values)
    lo, hi = _POSITIONAL
    if bool(((magnitude == 0) | ((magnitude >= lo) & (magnitude < hi))).all()):
        return json_texts
    return [b"None" if isnan(v) else repr(v).encode() for v in values.tolist()]


def round6(values: FloatArray) -> list[float]:
    """``round(v, 6)`` of each value, bit for bit, without a Python call per value.

    Python rounds the exact binary value to the nearest multiple of 1e-6 (ties to even) and
    returns the double nearest that decimal, which is what ``rint(v * 1e6) / 1e6`` returns
    whenever the rounded product ``v * 1e6`` (within half an ulp of the exact one) is further
    than an ulp from a half-integer: then it rounds to the same integer, and the division of
    two exact doubles is correctly rounded. The few other values take Python's ``round``.
    """
    values = values.astype(np.float64, copy=False)  # float32 scores: their exact doubles
    with np.errstate(over="ignore", invalid="ignore"):  # those values go to Python
        scaled = values * 1e6
        rounded: list[float] = (np.rint(scaled) / 1e6).tolist()
        margin = np.abs(scaled - np.floor(scaled) - 0.5)
        clear = (margin > np.abs(np.spacing(scaled))) & (np.abs(scaled) < _EXACT_SCALED)
    if not clear.all():
        originals = values.tolist()
        for i in np.flatnonzero(~clear).tolist():
            rounded[i] = round(originals[i], 6)
    return rounded


def joined_runs(items: list[bytes], case_of: np.ndarray[Any, Any], n_cases: int) -> list[bytes]:
    """``items`` (sorted by case, ``case_of`` naming each one's case) comma-joined per case."""
    if not items:
        return [b""] * n_cases
    if case_of.size == 1 or bool((case_of[1:] != case_of[:-1]).all()):
        # At most one item per case (every-event scoring, mostly): nothing to join.
        out = np.full(n_cases, b"", dtype=object)
        out[case_of] = items
        return out.tolist()
    bounds = np.searchsorted(case_of, np.arange(n_cases + 1)).tolist()
    join = b",".join
    return [join(items[lo:hi]) for lo, hi in pairwise(bounds)]


__all__ = ["joined_runs", "json", "numbers", "repr_texts", "round6", "string_texts"]
