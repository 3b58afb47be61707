"""Zarr arrays as lazy dask arrays whose chunks line up with the zarr (inner) chunks.

A 2D napari view then reads only the chunks it shows; for a sharded array the dask chunk is the
inner chunk, so a tile costs one ranged read of the shard, not the whole shard.
"""

from __future__ import annotations

import math

import dask.array as da
from dask.base import tokenize

from ..read.provenance import lazy

# Dask pays per chunk (building a graph of a million chunks takes ~0.3 s) while reading a bigger
# chunk than napari shows costs bytes: slicing a dask chunk reads all of it.  So only TINY zarr
# chunks are merged, by whole multiples, and only while the array has very many of them.
MAX_DASK_CHUNKS = 10_000
SMALL_CHUNK_BYTES = 64 << 10


def aligned_chunks(shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int = 1,
                   max_chunks: int = MAX_DASK_CHUNKS,
                   small: int = SMALL_CHUNK_BYTES) -> tuple[int, ...]:
    """``chunks`` (the zarr read chunk) as dask chunks: unchanged, unless the array has more
    than ``max_chunks`` chunks of less than ``small`` bytes; those are doubled along the axis
    with the most chunks until one of the two limits is reached."""
    out = [max(1, min(c, s)) if s else max(1, c) for c, s in zip(chunks, shape, strict=True)]

    def grid() -> list[int]:
        return [-(-s // c) if s else 1 for s, c in zip(shape, out, strict=True)]

    while math.prod(grid()) > max_chunks and math.prod(out) * itemsize < small:
        g = grid()
        axis = max(range(len(g)), key=lambda i: g[i])
        if g[axis] <= 1:
            break
        out[axis] = min(shape[axis], out[axis] * 2)
    return tuple(out)


def to_dask(array, *, token: str = "") -> da.Array:
    """A lazy dask view of a zarr array, chunked like the array's (inner) chunks."""
    chunks = aligned_chunks(tuple(array.shape), tuple(array.chunks), array.dtype.itemsize)
    name = "ozx-" + tokenize(token, str(array.store), array.path, array.shape,
                             str(array.dtype), chunks)
    # registered: a save copies the stored bytes of what is still unchanged
    return lazy(array, chunks, name)
