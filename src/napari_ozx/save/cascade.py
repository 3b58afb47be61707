"""A pyramid built while its full-resolution level is written, from the chunks in memory.

The task that encodes some inner chunks of level ``k`` (a slab of a shard) also downsamples
them (:func:`.pyramid.downsample_block`) into a *piece* of level ``k+1``; :class:`Assembly`
gathers the pieces into the inner chunks of level ``k+1`` they belong to, and the chunks a
piece completes become a task of their own (encoded, and downsampled for level ``k+2``), whose
encoded chunks join their shard (:class:`.encoder.ShardBuilder`).  So every source pixel is
computed once, no level is read back or decoded, and what waits in memory for the lower levels
is a few partly filled inner chunks per level, and their shards' encoded chunks.

This needs each inner chunk of level ``k`` (but the last along an axis) to hold whole windows
of the step to level ``k+1`` (:func:`aligned`), so that no window straddles two tasks; the
chunks chosen by :mod:`.options` always do.  Level-0 shards are visited in the order of
:func:`visit_order`, shard of the smallest level first, so the shards of each lower level fill
one after another and only about one shard per level is ever partly filled.

Pure arithmetic and numpy copies: it computes no pixels (:mod:`.tasks` does, in the workers),
encodes nothing (:mod:`.encoder`) and writes nothing (:mod:`.collector`).  The job
(:mod:`.job`) feeds it the downsampled pieces that come back from the tasks and turns the
chunks it completes into new tasks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .grid import Grid, Region

__all__ = ["Assembly", "aligned", "visit_order", "piece_box"]


def aligned(grids: Sequence[Grid], steps: Sequence[Sequence[int]]) -> bool:
    """Whether every cell (shard or chunk, as the grids say) of each level but the last holds
    whole windows of the next step."""
    for grid, step in zip(grids, steps, strict=False):  # the last grid has no step
        for cell, size, f in zip(grid.cell, grid.shape, step, strict=True):
            if cell < size and cell % f:
                return False
    return True


def piece_box(region: Region, step: Sequence[int]) -> Region:
    """The box of the next level that the downsampled ``region`` covers."""
    return tuple((a // f, -(-b // f)) for (a, b), f in zip(region, step, strict=True))


def visit_order(grids: Sequence[Grid], steps: Sequence[Sequence[int]]) -> list[int]:
    """Positions (in :attr:`Grid.regions` order) of the level-0 shards, sorted by the shard
    that holds them in the smallest level, then the next smallest, ... then their own."""
    factors = [tuple([1] * len(grids[0].shape))]
    for step in steps:
        factors.append(tuple(a * f for a, f in zip(factors[-1], step, strict=True)))
    keys = []
    for i, region in enumerate(grids[0].regions):
        start = [a for a, _ in region]
        key: list[int] = []
        for grid, fac in zip(reversed(grids), reversed(factors), strict=True):
            key.extend(grid.index_at([s // f for s, f in zip(start, fac, strict=True)]))
        keys.append((tuple(key), i))
    keys.sort()
    return [i for _, i in keys]


@dataclass
class _Cell:
    """A partly filled cell: its pixels so far, and how many are still missing."""

    pixels: np.ndarray
    missing: int


class Assembly:
    """The partly filled cells (inner chunks) of one level's grid; :meth:`add` returns those
    it completes."""

    def __init__(self, grid: Grid, dtype):
        self.grid = grid
        self.dtype = np.dtype(dtype)
        self._open: dict[tuple[int, ...], _Cell] = {}

    @property
    def pending(self) -> int:
        """How many cells are partly filled."""
        return len(self._open)

    def add(self, box: Region, piece: np.ndarray) -> list[tuple[Region, np.ndarray]]:
        """Put ``piece`` (the pixels of ``box``) in place; ``[(region, pixels)]`` of every cell
        that is complete now."""
        want = tuple(b - a for a, b in box)
        if tuple(piece.shape) != want:
            raise ValueError(f"piece of shape {piece.shape} for a box of shape {want}")
        done = []
        spans = [range(a // k, (b - 1) // k + 1)
                 for (a, b), k in zip(box, self.grid.cell, strict=True)]
        for index in itertools.product(*spans):
            region = self.grid.region(index)
            cell = self._open.get(index)
            if cell is None:
                shape = tuple(b - a for a, b in region)
                cell = self._open[index] = _Cell(np.empty(shape, self.dtype), math.prod(shape))
            lo = [max(a, r) for (a, _), (r, _) in zip(box, region, strict=True)]
            hi = [min(b, r) for (_, b), (_, r) in zip(box, region, strict=True)]
            dst = tuple(slice(x - r, y - r) for x, y, (r, _) in zip(lo, hi, region, strict=True))
            src = tuple(slice(x - a, y - a) for x, y, (a, _) in zip(lo, hi, box, strict=True))
            cell.pixels[dst] = piece[src]
            cell.missing -= math.prod(y - x for x, y in zip(lo, hi, strict=True))
            if cell.missing == 0:
                del self._open[index]
                done.append((region, cell.pixels))
        return done
