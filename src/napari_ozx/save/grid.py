"""Regular grids over an array: the shards of a level, or its inner chunks.

A :class:`Grid` answers where each cell of a regular grid lies (:class:`Region`: a
``(start, stop)`` pair per axis, clipped at the array's far edges), which cell holds a point, and
the cells as dask chunks.  It is pure arithmetic on shapes: no pixels, no bytes, no zarr.

Its inputs are the shapes the save plans (:mod:`.options` picks chunk and shard shapes); its
users are the shard encoder (:mod:`.encoder`: a level's shards), the cascade (:mod:`.cascade`:
inner chunks of the next level), the tasks (:mod:`.tasks`: slabs of a shard) and the job
(:mod:`.job`: the order in which shards are visited and the progress total).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Grid", "Region", "n_shards"]

#: A box of an array: ``(start, stop)`` along each axis.
Region = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Grid:
    """A regular grid of cells of shape ``cell`` over an array of ``shape``: its shards, or its
    inner chunks.  Cells at the array's far edges are clipped to it."""

    shape: tuple[int, ...]
    cell: tuple[int, ...]

    @cached_property
    def counts(self) -> tuple[int, ...]:
        """Cells per axis."""
        return tuple(-(-int(s) // int(k)) for s, k in zip(self.shape, self.cell, strict=True))

    @cached_property
    def regions(self) -> list[Region]:
        """Every cell's region, in C order."""
        return [self.region(ix) for ix in itertools.product(*map(range, self.counts))]

    @property
    def dask_chunks(self) -> tuple[tuple[int, ...], ...]:
        """The cells as dask chunks."""
        return tuple(tuple(min(k, s - a) for a in range(0, s, k))
                     for s, k in zip(self.shape, self.cell, strict=True))

    def region(self, index: Sequence[int]) -> Region:
        return tuple((i * k, min((i + 1) * k, s))
                     for i, k, s in zip(index, self.cell, self.shape, strict=True))

    def index_at(self, point: Sequence[int]) -> tuple[int, ...]:
        return tuple(int(p) // k for p, k in zip(point, self.cell, strict=True))


def n_shards(shape: Sequence[int], shards: Sequence[int]) -> int:
    """How many shard entries an array of ``shape`` can have (at least one per axis, so an
    array with an empty axis still counts one: the progress total)."""
    return math.prod(max(1, math.ceil(s / k)) for s, k in zip(shape, shards, strict=True))
