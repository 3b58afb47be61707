"""What was napari_ozx.save.shards (now save/tasks, scheduler, collector, spill): the distinct
values of a label block, slabs of a shard, the scheduler (the same pyramid on dask's synchronous
scheduler), the shard collector (no encoded shard of the level being written held in memory)
and the spill file lower levels wait in."""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import pytest

from helpers import random_pixels, reference_pyramid
from napari_ozx import open_ozx, write_ozx
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


# Two cases of one test (they were two tests, in two files): the default storage of a 2D image,
# and a sharded volume with the whole pyramid.
@pytest.mark.parametrize("shape, seed, options", [
    ((300, 300), 4, {"chunks": (64, 64)}),
    ((20, 200, 200), 5, {"axes": "zyx", "chunks": (4, 32, 32), "shards": (8, 64, 64),
                         "pyramid_levels": "full"}),
], ids=["defaults-2d", "sharded-full-pyramid"])
def test_single_threaded_scheduler_gives_the_same_pyramid(tmp_path, shape, seed, options):
    img = random_pixels(shape, seed=seed)
    a, b = tmp_path / "a.ozx", tmp_path / "b.ozx"
    write_ozx(a, img, **options)
    with dask.config.set(scheduler="synchronous"):
        write_ozx(b, img, **options)
    ga, gb = open_ozx(a), open_ozx(b)
    keys = sorted(ga.array_keys())
    assert keys and keys == sorted(gb.array_keys())
    for p in keys:
        np.testing.assert_array_equal(ga[p][:], gb[p][:])


def test_no_encoded_shard_of_the_written_level_is_held(tmp_path):
    """The shard being written streams into the archive and lower levels wait as encoded
    chunks: Python's peak allocation stays under 4 shards' pixels (incompressible data, so an
    encoded shard is as big as its pixels; the code before held about 6 shards' worth)."""
    import tracemalloc

    shape, shards = (128, 1024, 1024), (128, 256, 256)

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        seed = loc[0][0] * 1000 + loc[1][0] * 10 + loc[2][0]
        return np.random.default_rng(seed).integers(
            0, 4096, size=tuple(b - a for a, b in loc), dtype="uint16")

    src = da.map_blocks(block, chunks=da.core.normalize_chunks((32, 256, 256), shape),
                        dtype="uint16")
    shard_bytes = 2 * int(np.prod(shards))
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="threads", num_workers=2):
            write_ozx(tmp_path / "m.ozx", src, axes="zyx", chunks=(32, 64, 64), shards=shards,
                      pyramid_levels="full")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * shard_bytes, f"peak {peak / 2**20:.0f} MiB for {shard_bytes >> 20} MiB shards"
    g = open_ozx(tmp_path / "m.ozx")
    np.testing.assert_array_equal(g["0"][40:70, 500:530, 900:1000],
                                  np.asarray(src[40:70, 500:530, 900:1000]))


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "tempfile"])
def test_spilled_shards_wait_in_an_unnamed_file(tmp_path, monkeypatch, tmpfile):
    """Lower-level shards wait on disk: the save gives the same archive, leaves no file."""
    from napari_ozx.save.spill import Spill

    if not tmpfile:  # a file system without O_TMPFILE
        import errno

        real_open = os.open

        def no_tmpfile(path, flags, *a, **kw):
            if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
                raise OSError(errno.EOPNOTSUPP, "not supported")
            return real_open(path, flags, *a, **kw)

        monkeypatch.setattr(os, "open", no_tmpfile)
    spill = Spill(str(tmp_path))
    assert spill.append(b"abc") == 0 and spill.append(memoryview(b"defgh")) == 3
    assert spill.read(2, 4) == b"cdef"
    assert os.listdir(tmp_path) == []  # unnamed
    spill.close()
    spill.close()
    img = random_pixels((16, 300, 300), seed=6)
    write_ozx(tmp_path / "s.ozx", img, axes="zyx", chunks=(8, 32, 32), shards=(16, 64, 64),
              pyramid_levels="full")
    assert os.listdir(tmp_path) == ["s.ozx"]
    g = open_ozx(tmp_path / "s.ozx")
    for k, ref in enumerate(reference_pyramid(img, (8, 32, 32), ["space"] * 3, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
