"""One task per slab (napari_ozx.save.tasks): the distinct values of a label block, the slabs a
shard is cut into, and the regions of a slab grid."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ozx.save.tasks import slab_chunks, slab_regions, values_present


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


def test_slabs_are_whole_chunk_layers_cut_where_source_chunks_end():
    # 256^3 shards of 64^3 chunks, source chunks of 64 planes: four slabs of 64 per shard
    assert slab_chunks((512, 256, 256), (256, 256, 256), (64, 64, 64), (2, 2, 2),
                       ((64,) * 8, (256,), (256,)))[0] == (64,) * 8
    # source chunks of 128 planes: never cut one, so slabs of 128
    assert slab_chunks((512, 256, 256), (256, 256, 256), (64, 64, 64), None,
                       ((128,) * 4, (256,), (256,)))[0] == (128,) * 4
    # source chunks that end nowhere near a chunk layer: the whole shard in one slab
    assert slab_chunks((300, 64), (256, 64), (64, 64), None,
                       ((100, 100, 100), (64,)))[0] == (256, 44)
    # chunks of 1 plane and a step of 2: slabs hold whole windows
    assert slab_chunks((7, 64), (4, 64), (1, 64), (2, 2), None)[0] == (2, 2, 2, 1)
    # the shard is one chunk along the first axis: slabs go along the next
    assert slab_chunks((1, 512, 64), (1, 256, 64), (1, 64, 64))[1] == (64,) * 8


def test_slab_regions_of_a_shard():
    grid = slab_chunks((300, 64), (256, 64), (64, 64), None, ((64,) * 4 + (44,), (64,)))
    assert slab_regions(grid, ((256, 300), (0, 64))) == [((4, 0), ((256, 300), (0, 64)))]
    assert [sub for _, sub in slab_regions(grid, ((0, 256), (0, 64)))] == [
        ((0, 64), (0, 64)), ((64, 128), (0, 64)), ((128, 192), (0, 64)), ((192, 256), (0, 64))]
