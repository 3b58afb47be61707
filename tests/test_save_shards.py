"""shards.py helpers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ozx.save.tasks import values_present


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "int32", "uint64",
                                   "int64"])
@pytest.mark.parametrize("distinct", [1, 3, 200])
def test_values_present_are_the_sorted_distinct_values(dtype, distinct):
    rng = np.random.default_rng(distinct)
    block = rng.integers(0, distinct, (6, 17, 9)).astype(dtype)
    if np.dtype(dtype).kind == "i":
        block -= 1  # negative values too
    np.testing.assert_array_equal(values_present(block), np.unique(block))


def test_values_present_of_tiny_blocks():
    assert values_present(np.zeros((0,), "uint8")).tolist() == []
    assert values_present(np.full((1, 1), 7, "uint16")).tolist() == [7]
