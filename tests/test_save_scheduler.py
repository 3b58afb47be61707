"""The task stream (napari_ozx.save.scheduler): the archive does not depend on which dask
scheduler ran the tasks."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from helpers import random_pixels
from napari_ozx import open_ozx, write_ozx


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
