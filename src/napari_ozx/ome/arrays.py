"""Zarr arrays as lazy dask arrays whose chunks line up with the zarr (inner) chunks.

A 2D napari view then reads only the chunks it shows; for a sharded array the dask chunk is the
inner chunk, so a tile costs one ranged read of the shard, not the whole shard.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
from dask.base import tokenize

# Above this many chunks dask's graph bookkeeping costs more than it saves: chunks are then
# grown by whole multiples of the zarr chunk (still aligned) until the count fits.
MAX_DASK_CHUNKS = 1_000_000


def aligned_chunks(shape: tuple[int, ...], chunks: tuple[int, ...],
                   max_chunks: int = MAX_DASK_CHUNKS) -> tuple[int, ...]:
    """``chunks`` (the zarr read chunk), grown by integer factors along the longest-gridded
    axes until the array has at most ``max_chunks`` chunks."""
    chunks = [max(1, min(c, s)) if s else max(1, c) for c, s in zip(chunks, shape)]

    def count() -> int:
        return math.prod(math.ceil(s / c) if s else 1 for s, c in zip(shape, chunks))

    while count() > max_chunks:
        grid = [math.ceil(s / c) if s else 1 for s, c in zip(shape, chunks)]
        axis = max(range(len(grid)), key=lambda i: grid[i])
        if grid[axis] <= 1:
            break
        chunks[axis] = min(shape[axis], chunks[axis] * 2)
    return tuple(chunks)


def to_dask(array, *, token: str = "") -> da.Array:
    """A lazy dask view of a zarr array, chunked like the array's (inner) chunks."""
    chunks = aligned_chunks(tuple(array.shape), tuple(array.chunks))
    name = "ozx-" + tokenize(token, str(array.store), array.path, array.shape,
                             str(array.dtype), chunks)
    return da.from_array(array, chunks=chunks, name=name, inline_array=True,
                         asarray=False, fancy=False,
                         meta=np.empty((0,) * array.ndim, dtype=array.dtype))
