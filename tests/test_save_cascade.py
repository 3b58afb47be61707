"""The pyramid built from the shards in memory while level 0 is written (napari_ozx.save.cascade):
the same pixels as dask's lazy pyramid, every source block computed once, memory held to about
one partly filled shard per level, and a fallback where shards and windows do not line up."""

from __future__ import annotations

import os
import threading

import dask
import dask.array as da
import numpy as np
import pytest

from napari_ozx import open_ozx, write_ozx
from napari_ozx.save.cascade import Assembly, aligned, piece_box, visit_order
from napari_ozx.save.grid import Grid
from napari_ozx.save.pyramid import build_pyramid, plan_factors
from napari_ozx.save.tasks import slab_chunks, slab_regions


def _pixels(seed, shape, high=4000, dtype="uint16"):
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=dtype)


def _reference(img, chunks, types, method, scale=None):
    steps = plan_factors(img.shape, chunks, types, scale)
    return [np.asarray(x) for x in build_pyramid(da.from_array(img), steps, method)]


@pytest.mark.parametrize("shape,chunks,shards", [
    ((50, 333, 517), (16, 32, 32), (32, 64, 128)),   # odd edges on every axis and level
    ((40, 256, 256), (8, 64, 64), (16, 128, 64)),     # shards of several shapes
    ((3, 300, 200), (1, 64, 64), (2, 128, 128)),      # z chunks of 1 (slabs of 2)
])
def test_cascade_equals_the_lazy_dask_pyramid(tmp_path, shape, chunks, shards):
    img = _pixels(1, shape)
    out = tmp_path / "c.ozx"
    write_ozx(out, da.from_array(img, chunks=(8, 100, 100)), axes="zyx", chunks=chunks,
              shards=shards, pyramid_levels="full")
    g = open_ozx(out)
    want = _reference(img, chunks, ["space"] * 3, "mean")
    assert len(g.attrs["ome"]["multiscales"][0]["datasets"]) == len(want) > 2
    for k, ref in enumerate(want):
        np.testing.assert_array_equal(g[str(k)][:], ref, err_msg=f"level {k}")


def test_cascade_for_channels_and_labels(tmp_path):
    img = _pixels(2, (2, 24, 300, 260))
    lab = np.zeros((24, 300, 260), "uint32")
    lab[3:20, 40:200, 30:90] = 5
    lab[:, 150:290, 100:250] = 70000
    lab[5, 7, 9] = 3
    out = tmp_path / "cl.ozx"
    write_ozx(out, img, labels={"cells": lab}, axes="czyx", chunks=(1, 8, 64, 64),
              shards=(1, 8, 128, 128), pyramid_levels="full")
    g = open_ozx(out)
    types = ["channel", "space", "space", "space"]
    for k, ref in enumerate(_reference(img, (1, 8, 64, 64), types, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
    labels = _reference(lab, (8, 64, 64), ["space"] * 3, "mode")
    for k, ref in enumerate(labels):
        got = g[f"labels/cells/{k}"][:]
        np.testing.assert_array_equal(got, ref)
        assert set(np.unique(got)) <= {0, 3, 5, 70000}
    colours = g["labels/cells"].attrs["ome"]["image-label"]["colors"]
    assert sorted(c["label-value"] for c in colours) == [0, 3, 5, 70000]


def test_every_source_block_is_computed_once(tmp_path):
    calls: dict[tuple, int] = {}
    lock = threading.Lock()

    def block(block_id=None, block_info=None):
        shape = block_info[None]["chunk-shape"]
        if min(shape) > 0:  # not dask's meta probe
            with lock:
                calls[block_id] = calls.get(block_id, 0) + 1
        return np.full(shape, sum(block_id), "uint16")

    src = da.map_blocks(block, chunks=((32,) * 4, (128,) * 3, (128,) * 3), dtype="uint16")
    write_ozx(tmp_path / "once.ozx", src, axes="zyx", chunks=(32, 64, 64),
              shards=(64, 128, 128), pyramid_levels="full")
    assert len(calls) == 4 * 3 * 3
    assert set(calls.values()) == {1}  # two slabs per shard, each its own source block
    g = open_ozx(tmp_path / "once.ozx")
    np.testing.assert_array_equal(g["0"][:], np.asarray(src))
    assert "3" in g  # levels below 0 came from memory: nothing was read back or recomputed


def test_unaligned_chunks_fall_back_to_reading_the_level_back(tmp_path, monkeypatch):
    from napari_ozx.save.job import Job as _Job

    read_back = []
    real = _Job._read_back
    monkeypatch.setattr(_Job, "_read_back",
                        lambda self, *a: read_back.append(a[0]) or real(self, *a))
    img = _pixels(3, (95, 101))
    out = tmp_path / "odd.ozx"
    write_ozx(out, img, chunks=(5, 5), shards=(15, 15), pyramid_levels="full")  # 5 holds no whole 2x2 windows
    assert read_back[:2] == ["0", "1"]
    g = open_ozx(out)
    for k, ref in enumerate(_reference(img, (5, 5), ["space"] * 2, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
    assert not aligned([Grid((95, 101), (15, 15))], [(2, 2)])
    assert aligned([Grid((95, 101), (10, 20))], [(2, 2)])
    assert aligned([Grid((15, 16), (15, 8))], [(2, 2)])  # one shard along y: nothing to cut


def test_failure_in_a_pyramid_shard_leaves_the_destination(tmp_path):
    dest = tmp_path / "keep.ozx"
    write_ozx(dest, np.ones((64, 64), "uint16"))
    before = dest.read_bytes()

    def block(block_id=None):
        if block_id == (3, 3):  # the last shard of level 0 completes level 1's last shard
            raise RuntimeError("sensor unplugged")
        return np.full((128, 128), 7, "uint16")

    bad = da.map_blocks(block, chunks=((128,) * 4, (128,) * 4), dtype="uint16")
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(RuntimeError, match="sensor unplugged"):
        write_ozx(dest, bad, chunks=(64, 64), shards=(128, 128))
    assert len(os.listdir("/proc/self/fd")) == fds  # no temporary or spill file left open
    assert os.listdir(tmp_path) == ["keep.ozx"]
    assert dest.read_bytes() == before


def test_visit_order_keeps_one_partial_shard_per_level():
    grids = [Grid((512, 1024, 2048), (128, 256, 256)), Grid((256, 512, 1024), (128, 256, 256)),
             Grid((128, 256, 512), (128, 256, 256)), Grid((64, 128, 256), (64, 128, 256))]
    steps = [(2, 2, 2)] * 3
    assemblies = [Assembly(g, "uint8") for g in grids[1:]]
    most = [0] * len(assemblies)
    completed = [0] * len(assemblies)
    level0 = grids[0].regions
    order = visit_order(grids, steps)
    assert sorted(order) == list(range(len(level0)))

    def deliver(depth, region):
        shape = tuple(-(-(b - a) // f) for (a, b), f in zip(region, steps[depth]))
        for r, pixels in assemblies[depth].add(piece_box(region, steps[depth]),
                                               np.zeros(shape, "uint8")):
            completed[depth] += 1
            assert pixels.shape == tuple(b - a for a, b in r)
            if depth + 1 < len(assemblies):
                deliver(depth + 1, r)
        most[depth] = max(most[depth], assemblies[depth].pending)

    for i in order:
        deliver(0, level0[i])
    assert completed == [len(g.regions) for g in grids[1:]]
    assert most == [1, 1, 1]
    assert assemblies and all(a.pending == 0 for a in assemblies)


def test_assembly_refuses_a_piece_of_the_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        Assembly(Grid((8, 8), (4, 4)), "uint8").add(((0, 4), (0, 4)), np.zeros((4, 3), "u1"))


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


def test_single_threaded_scheduler_gives_the_same_pyramid(tmp_path):
    img = _pixels(5, (20, 200, 200))
    a, b = tmp_path / "a.ozx", tmp_path / "b.ozx"
    write_ozx(a, img, axes="zyx", chunks=(4, 32, 32), shards=(8, 64, 64), pyramid_levels="full")
    with dask.config.set(scheduler="synchronous"):
        write_ozx(b, img, axes="zyx", chunks=(4, 32, 32), shards=(8, 64, 64),
                  pyramid_levels="full")
    ga, gb = open_ozx(a), open_ozx(b)
    assert sorted(ga.array_keys()) == sorted(gb.array_keys())
    for p in ga.array_keys():
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
    img = _pixels(6, (16, 300, 300))
    write_ozx(tmp_path / "s.ozx", img, axes="zyx", chunks=(8, 32, 32), shards=(16, 64, 64),
              pyramid_levels="full")
    assert os.listdir(tmp_path) == ["s.ozx"]
    g = open_ozx(tmp_path / "s.ozx")
    for k, ref in enumerate(_reference(img, (8, 32, 32), ["space"] * 3, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
