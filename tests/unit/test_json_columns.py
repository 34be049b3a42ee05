"""Column texts are the per-value texts: Python's round and repr, msgspec's JSON."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from casewatch.scoring.json_columns import joined_runs, numbers, repr_texts, round6, string_texts

RNG = np.random.default_rng(11)


def near_halves(count: int) -> np.ndarray:
    """Values at, and one or two ulps either side of, odd multiples of 5e-7: where rounding
    the scaled value could tip to the other integer."""
    halves = (RNG.integers(-(10**9), 10**9, size=count) + 0.5) / 1e6
    return np.concatenate(
        [halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf),
         np.nextafter(np.nextafter(halves, np.inf), np.inf)]
    )  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        RNG.gamma(2.0, 1.5, size=50_000),
        near_halves(20_000),
        RNG.normal(0, 1e-7, size=5_000),
        np.exp(RNG.uniform(-30, 40, size=20_000)) * RNG.choice([-1.0, 1.0], size=20_000),
        np.array(
            [0.0, -0.0, np.nan, np.inf, -np.inf, 2.0**52, 4.5e9, 5e-324, 1.7976931348623157e308]
        ),
    ],
    ids=["scores", "near-halves", "tiny", "magnitudes", "special"],
)
def test_round6_is_pythons_round(values: np.ndarray) -> None:
    expected = [round(v, 6) for v in values.tolist()]
    got = round6(values)
    assert [v.hex() for v in got] == [v.hex() for v in expected]  # bit for bit, signs too


@pytest.mark.parametrize(
    "values",
    [
        RNG.uniform(1.6e9, 1.9e9, size=50_000),
        np.exp(RNG.uniform(np.log(1e-4), np.log(1e16), size=50_000)),
        np.array([1.7e9, np.nan, 1e-5, 1e16, -3.5, 0.0, np.inf]),
        np.array([1e-4, 9999999999999998.0, -0.0, 1.0]),
    ],
    ids=["times", "positional", "mixed", "edges"],
)
def test_repr_texts_are_the_id_texts(values: np.ndarray) -> None:
    texts = repr_texts(values, numbers(values.tolist()))
    assert texts == [f"{None if math.isnan(v) else v}".encode() for v in values.tolist()]


@pytest.mark.parametrize(
    "texts", [["case-1", "é", "a b", "🙂"], ['q"', "x"], ["back\\", "c"], ["\x01"], []]
)
def test_string_texts(texts: list[str]) -> None:
    insides, raw = string_texts(texts)
    assert insides == [msgspec.json.encode(t)[1:-1] for t in texts]
    assert raw == [t.encode() for t in texts]


def test_joined_runs() -> None:
    items = [b"a", b"b", b"c", b"d"]
    assert joined_runs(items, np.array([0, 2, 2, 3]), 5) == [b"a", b"", b"b,c", b"d", b""]
    assert joined_runs(items, np.array([0, 1, 3, 4]), 5) == [b"a", b"b", b"", b"c", b"d"]
    assert joined_runs([], np.array([], dtype=np.int64), 2) == [b"", b""]
