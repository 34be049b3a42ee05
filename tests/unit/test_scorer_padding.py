"""The rows a scorer adds to a run so that its tensors fill whole SIMD registers."""

from __future__ import annotations

import numpy as np
import pytest

from casewatch.scoring.scorer import _padded


@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 2), (1, 4)])
@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_padding_repeats_the_last_row_and_keeps_dtype_and_rows(
    shape: tuple[int, ...], dtype: type[np.generic]
) -> None:
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    padded = _padded({"x": array}, 16)["x"]
    expected = np.concatenate([array, np.repeat(array[-1:], 16 - shape[0], axis=0)])
    assert padded.dtype == array.dtype
    assert padded.flags.c_contiguous
    np.testing.assert_array_equal(padded, expected)


def test_a_run_that_fills_whole_registers_goes_as_it_is() -> None:
    features = {"x": np.zeros((16, 2), np.float32)}
    assert _padded(features, 16) is features
