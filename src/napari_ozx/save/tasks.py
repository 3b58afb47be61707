"""The unit of work of a save: a task that encodes some whole inner chunks of a level.

A task (:class:`Work`) computes some whole inner chunks of a level (a slab of a shard, or
chunks assembled from the level above), encodes them (:mod:`.encoder`) and, when a pyramid
level follows, downsamples them into a piece of that level (:func:`encode_task`), so it can run
anywhere (threads, processes, ``dask.distributed`` workers); only the encoded chunks and the
piece travel back (:class:`Encoded`).  :func:`slab_chunks` and :func:`slab_regions` cut a
level's shards into the slabs the tasks compute; :func:`read_shard` reads a shard back from the
archive being written (by path and byte span), for pyramids whose chunks do not line up with
the downsampling windows.

It does not run the tasks (:mod:`.scheduler`) nor write what they return (:mod:`.collector`):
the job (:mod:`.job`) makes the tasks from its plan and files their results.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import OzxError
from ..zip._io import FileEndedError, pread_exactly
from .cascade import piece_box
from .grid import Grid, Region
from .pyramid import downsample_block

__all__ = ["Work", "Encoded", "encode_task", "slab_chunks", "slab_regions", "read_shard",
           "values_present"]


@dataclass
class Work:
    """One task: ``fn(parts, *args)``, where ``parts`` are the values of ``data``, a list of
    dask collections (computed one after another where the task runs) or arrays in memory."""

    fn: Callable
    data: list
    args: tuple
    tag: Any = None  # for the caller (the save: which level the task's chunks are of)


class Encoded(NamedTuple):
    """What a task sends back from the worker."""

    chunks: list[tuple[tuple[int, ...], bytes | None]]  # (chunk index, bytes or None: fill)
    values: np.ndarray | None  # the distinct label values seen (level 0 of a label image)
    pieces: list[tuple[Region, np.ndarray]]  # (box, pixels) of the next level, downsampled


def values_present(block: np.ndarray) -> np.ndarray:
    """The distinct values of a label block, sorted.  Every value starts a run of equal values
    in C order, and a label image has few runs: ``np.unique`` of the run starts (one pass of
    compares) is 6x faster than ``np.unique`` of the block on a 64 x 256 x 256 uint16 slab,
    and no slower than it where every pixel differs."""
    flat = block.reshape(-1)
    if flat.size < 2:
        return np.unique(flat)
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    return np.unique(np.concatenate([flat[:1], flat[starts]]))


def encode_task(parts: Iterable, meta_json: bytes, boxes: list[Region], unique: bool,
                step: Sequence[int] | None, method: str) -> Encoded:
    """Encode the inner chunks of ``boxes`` (each whole inner chunks of the array described by
    ``meta_json``), given as ``parts`` (their pixels, computed one after another); with a
    ``step``, also downsample each box for the next level.
    """
    # the encoder imports zarr (~0.2 s): paid by the first save, not by opening the widget
    from .encoder import ShardEncoder

    encoder = ShardEncoder.from_metadata(meta_json)
    if encoder is None:  # the save creates only layouts it covers
        raise OzxError("no shard encoder for this array's layout")
    values: np.ndarray | None = None
    pieces: list[tuple[Region, np.ndarray]] = []
    chunks: list[tuple[tuple[int, ...], bytes | None]] = []
    # parts is lazy (each computed as it is taken): as many boxes as parts
    for box, part in zip(boxes, parts, strict=True):
        block = np.asarray(part)
        chunks += encoder.encode_box(box, block)
        if unique:
            found = values_present(block)
            values = found if values is None else np.union1d(values, found)
        if step is not None:
            pieces.append((piece_box(box, step), downsample_block(block, step, method)))
        del block, part
    return Encoded(chunks, values, pieces)


def slab_chunks(shape: Sequence[int], shards: Sequence[int], chunks: Sequence[int],
                step: Sequence[int] | None = None,
                source_chunks: Sequence[Sequence[int]] | None = None
                ) -> tuple[tuple[int, ...], ...]:
    """Dask chunks that cut each shard into slabs along one axis (the first along which a
    shard holds several inner chunks): whole layers of inner chunks and of downsampling
    windows, cut only where a chunk of ``source_chunks`` ends (so no source chunk is computed
    twice for one shard)."""
    out = list(Grid(tuple(shape), tuple(shards)).dask_chunks)
    axis = next((i for i, (k, c, s) in enumerate(zip(shards, chunks, shape, strict=True))
                 if min(k, s) > c), None)
    if axis is None:
        return tuple(out)
    unit = math.lcm(int(chunks[axis]), int(step[axis]) if step is not None else 1)
    ends = None
    if source_chunks is not None:
        ends = set(itertools.accumulate(source_chunks[axis]))
    sizes = []
    for a in range(0, shape[axis], shards[axis]):
        b, last = min(a + shards[axis], shape[axis]), a
        for cut in range(a + unit, b, unit):
            if ends is None or cut in ends:
                sizes.append(cut - last)
                last = cut
        sizes.append(b - last)
    out[axis] = tuple(sizes)
    return tuple(out)


def slab_regions(slab_grid: tuple[tuple[int, ...], ...], region: Region,
                 origin: Sequence[int] | None = None) -> list[tuple[tuple[int, ...], Region]]:
    """``[(block index, slab region)]`` of the slabs of ``slab_grid`` (dask chunks, starting
    at ``origin``) that make up ``region``."""
    origin = origin or (0,) * len(slab_grid)
    starts = [tuple(itertools.accumulate(c, initial=o))[:-1]
              for c, o in zip(slab_grid, origin, strict=True)]
    ranges = [range(bisect.bisect_left(st, a), bisect.bisect_left(st, b))
              for st, (a, b) in zip(starts, region, strict=True)]
    return [(index, tuple((st[i], st[i] + c[i])
                          for st, c, i in zip(starts, slab_grid, index, strict=True)))
            for index in itertools.product(*ranges)]


def read_shard(meta_json: bytes, key: str, path: str, span: tuple[int, int] | None,
               region: Region, block_info: Any = None) -> np.ndarray:
    """One shard of a level as written, read back from the (temporary) archive file."""
    # zarr is imported by the first save that reads a level back, not with this module
    import zarr
    from zarr.core.buffer import Buffer, cpu
    from zarr.storage import MemoryStore

    d: dict[str, Buffer] = {"zarr.json": cpu.Buffer.from_bytes(meta_json)}
    if span is not None:
        offset, size = span
        with open(path, "rb", buffering=0) as f:
            try:
                data = pread_exactly(f.fileno(), offset, size)
            except FileEndedError as e:  # the temporary archive was cut under us
                raise OzxError(f"ended at byte {e.at} of {offset + size}", archive=path,
                               entry=key) from None
        d[key] = cpu.Buffer.from_bytes(data)
    arr = zarr.open_array(MemoryStore(d), mode="r", zarr_format=3)
    return np.asarray(arr[tuple(slice(a, b) for a, b in region)])
