"""The pyramid built from the shards in memory while level 0 is written (napari_ozx.save.cascade):
the same pixels as dask's lazy pyramid, every source block computed once, memory held to about
one partly filled shard per level, and a fallback where shards and windows do not line up."""

from __future__ import annotations

import os
import threading

import dask.array as da
import numpy as np
import pytest

from helpers import random_pixels, reference_pyramid
from napari_ozx import open_ozx, write_ozx
from napari_ozx.save.cascade import Assembly, aligned, piece_box, visit_order
from napari_ozx.save.grid import Grid


@pytest.mark.parametrize("shape,chunks,shards", [
    ((50, 333, 517), (16, 32, 32), (32, 64, 128)),   # odd edges on every axis and level
    ((40, 256, 256), (8, 64, 64), (16, 128, 64)),     # shards of several shapes
    ((3, 300, 200), (1, 64, 64), (2, 128, 128)),      # z chunks of 1 (slabs of 2)
])
def test_cascade_equals_the_lazy_dask_pyramid(tmp_path, shape, chunks, shards):
    img = random_pixels(shape, seed=1)
    out = tmp_path / "c.ozx"
    write_ozx(out, da.from_array(img, chunks=(8, 100, 100)), axes="zyx", chunks=chunks,
              shards=shards, pyramid_levels="full")
    g = open_ozx(out)
    want = reference_pyramid(img, chunks, ["space"] * 3, "mean")
    assert len(g.attrs["ome"]["multiscales"][0]["datasets"]) == len(want) > 2
    for k, ref in enumerate(want):
        np.testing.assert_array_equal(g[str(k)][:], ref, err_msg=f"level {k}")


def test_cascade_for_channels_and_labels(tmp_path):
    img = random_pixels((2, 24, 300, 260), seed=2)
    lab = np.zeros((24, 300, 260), "uint32")
    lab[3:20, 40:200, 30:90] = 5
    lab[:, 150:290, 100:250] = 70000
    lab[5, 7, 9] = 3
    out = tmp_path / "cl.ozx"
    write_ozx(out, img, labels={"cells": lab}, axes="czyx", chunks=(1, 8, 64, 64),
              shards=(1, 8, 128, 128), pyramid_levels="full")
    g = open_ozx(out)
    types = ["channel", "space", "space", "space"]
    for k, ref in enumerate(reference_pyramid(img, (1, 8, 64, 64), types, "mean")):
        np.testing.assert_array_equal(g[str(k)][:], ref)
    labels = reference_pyramid(lab, (8, 64, 64), ["space"] * 3, "mode")
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
    img = random_pixels((95, 101), seed=3)
    out = tmp_path / "odd.ozx"
    # a chunk of 5 holds no whole 2x2 windows
    write_ozx(out, img, chunks=(5, 5), shards=(15, 15), pyramid_levels="full")
    assert read_back[:2] == ["0", "1"]
    g = open_ozx(out)
    for k, ref in enumerate(reference_pyramid(img, (5, 5), ["space"] * 2, "mean")):
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
        shape = tuple(-(-(b - a) // f) for (a, b), f in zip(region, steps[depth], strict=True))
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
