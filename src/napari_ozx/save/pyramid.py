"""Lazy multiscale pyramids of dask arrays.

:func:`plan_factors` decides how often and along which axes to halve an image: y and x by 2 at
every level, z by 2 only while its physical spacing does not exceed that of y/x (so an
anisotropic stack is first made isotropic), other axes (t, c) never; levels stop once a level
fits in one chunk.  :func:`downsample` builds one level from the previous one, lazily:

* ``"mean"`` (area average, for images): each output pixel is the mean of the input pixels of
  its window; a window cut by the edge averages the pixels it has.  Integers are rounded back to
  their type.
* ``"mode"`` (for labels): the most frequent value of the window, ties going to the first in
  C order; ``"nearest"``: the window's first pixel.  Both only ever give values of the input.

Nothing is computed here; each output block depends on the input blocks under it only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import dask.array as da
import numpy as np

__all__ = ["METHODS", "LABEL_METHODS", "SCREEN_TILE", "VOLUME_BYTES", "needs_pyramid",
           "plan_factors", "downsample", "build_pyramid", "downsample_block"]

METHODS = ("mean", "mode", "nearest")
LABEL_METHODS = ("mode", "nearest")
#: z is halved together with y/x while z spacing <= this times the y/x spacing
ISOTROPY_TOLERANCE = 1.0


#: A plane up to this many pixels along y and x needs no pyramid: napari draws a 2D image of up
#: to 2048 x 2048 as one texture (every GPU napari supports takes 2048; llvmpipe takes 16384),
#: and a 1080p to 1440p canvas shows it whole in one or two screenfuls.
SCREEN_TILE = 2048
#: ... and a volume (3 space axes) up to this many bytes per channel and time point: in 3D napari
#: loads the whole volume of a level as one texture, which this keeps within ~128 MiB.
VOLUME_BYTES = 128 << 20


def needs_pyramid(shape: Sequence[int], axis_types: Sequence[str | None], itemsize: int) -> bool:
    """Whether extra levels help napari show an image: only when a plane is larger than
    :data:`SCREEN_TILE` along y or x, or a volume larger than :data:`VOLUME_BYTES`."""
    space = [i for i, t in enumerate(axis_types) if t == "space"]
    if not space:
        return False
    if any(int(shape[i]) > SCREEN_TILE for i in space[-2:]):
        return True
    return len(space) >= 3 and math.prod(int(shape[i]) for i in space) * itemsize > VOLUME_BYTES


def plan_factors(
    shape: Sequence[int],
    chunks: Sequence[int],
    axis_types: Sequence[str | None],
    scale: Sequence[float] | None = None,
    *,
    levels: int | None = None,
) -> list[tuple[int, ...]]:
    """Per-level downsampling factors (relative to the previous level), level 1 onwards.

    ``levels`` is the total number of levels wanted (1: no pyramid); None builds levels until
    the image fits in one chunk along every space axis.  Fewer levels come back when an image
    is too small for more.
    """
    ndim = len(shape)
    scale = list(scale) if scale is not None else [1.0] * ndim
    space = [i for i, t in enumerate(axis_types) if t == "space"]
    planar = space[-2:]
    depth = space[:-2]
    shape = list(shape)
    out: list[tuple[int, ...]] = []
    while levels is None or len(out) + 1 < levels:
        fits = all(shape[i] <= chunks[i] for i in space)
        if levels is None and fits:
            break
        if all(shape[i] <= 1 for i in planar):
            break
        f = [1] * ndim
        xy_spacing = min(scale[i] for i in planar) if planar else 1.0
        for i in planar:
            if shape[i] > 1:
                f[i] = 2
        for i in depth:
            if shape[i] > 1 and scale[i] <= ISOTROPY_TOLERANCE * xy_spacing:
                f[i] = 2
        out.append(tuple(f))
        shape = [math.ceil(s / k) for s, k in zip(shape, f, strict=True)]
        scale = [s * k for s, k in zip(scale, f, strict=True)]
    return out


def _windows_pad(block: np.ndarray, factors: Sequence[int], mode: Literal["constant", "edge"]
                 ) -> np.ndarray:
    pad = [(0, (-s) % f) for s, f in zip(block.shape, factors, strict=True)]
    if any(p for _, p in pad):
        block = np.pad(block, pad, mode=mode)
    return block


def _split(block: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """(n0, f0, n1, f1, ...) view of a padded block."""
    shape: list[int] = []
    for s, f in zip(block.shape, factors, strict=True):
        shape += [s // f, f]
    return block.reshape(shape)


def _mean(block: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    ndim = block.ndim
    acc = np.float64 if block.dtype.itemsize > 2 or block.dtype.kind == "f" else np.float32
    counts = np.ones((), dtype=acc)
    for axis, (s, f) in enumerate(zip(block.shape, factors, strict=True)):
        n = math.ceil(s / f)
        c = np.full(n, f, dtype=acc)
        if s % f:
            c[-1] = s % f
        counts = np.multiply.outer(counts, c) if axis else c
    # One axis at a time, by strided adds: much faster than one reduction over a
    # multi-axis strided view.
    sums = _windows_pad(block, factors, "constant")
    for axis, f in enumerate(factors):
        if f == 1:
            continue
        index = [slice(None)] * ndim
        parts = []
        for j in range(f):
            index[axis] = slice(j, None, f)
            parts.append(sums[tuple(index)])
        total = parts[0].astype(acc)
        for p in parts[1:]:
            np.add(total, p, out=total)
        sums = total
    if sums.dtype != acc:
        sums = sums.astype(acc)
    mean = sums / counts
    dtype = block.dtype
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        return mean >= 0.5
    return mean.astype(dtype)


def _mode(block: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """The most frequent value of each window, ties to the first in C order.

    Windows are never gathered into a copy: each window offset is a strided view of the
    block, so finding the windows that hold more than one value is one pass of compares
    (most windows of a label image hold one value; 5x faster than transposing the block into
    rows of windows).  Votes are counted for those mixed windows only."""
    split = _split(_windows_pad(block, factors, "edge"), factors)
    outer = split.shape[0::2]
    offsets = list(itertools.product(*(range(f) for f in factors)))

    def at(offset) -> np.ndarray:  # the pixel at ``offset`` of every window: shape ``outer``
        return split[tuple(x for o in offset for x in (slice(None), o))]

    first = at(offsets[0])
    out = np.ascontiguousarray(first)
    if len(offsets) == 1:
        return out.copy() if out is first else out
    mixed = np.zeros(outer, dtype=bool)
    for offset in offsets[1:]:
        mixed |= at(offset) != first
    if mixed.any():
        sub = np.stack([at(offset)[mixed] for offset in offsets], axis=1)  # (windows, k)
        counts = np.zeros(sub.shape, dtype=np.uint8)
        for j in range(sub.shape[1]):
            np.add(counts, sub == sub[:, j : j + 1], out=counts)
        out = out.copy() if np.shares_memory(out, block) else out
        out[mixed] = sub[np.arange(len(sub)), counts.argmax(axis=1)]
    return out.copy() if np.shares_memory(out, block) else out


#: A mean over a larger block is computed in slices of about this size along its first axis
#: (the float work space of a slice is a few times its size).
MEAN_SLICE_BYTES = 1 << 20


def downsample_block(block: np.ndarray, factors: Sequence[int], method: str) -> np.ndarray:
    """Downsample one numpy block whose start lies on a window boundary."""
    if method == "mean":
        f0 = factors[0] if factors else 1
        rows = f0 * max(1, MEAN_SLICE_BYTES // max(1, block[:f0].nbytes))
        if block.ndim == 0 or block.shape[0] <= rows:
            return _mean(block, factors)
        parts = [_mean(block[a:a + rows], factors) for a in range(0, block.shape[0], rows)]
        return np.concatenate(parts)
    if method == "mode":
        return _mode(block, factors)
    if method == "nearest":
        return block[tuple(slice(None, None, f) for f in factors)].copy()
    raise ValueError(f"unknown downsampling method {method!r}; use one of {METHODS}")


def downsample(array: da.Array, factors: Sequence[int], method: str = "mean") -> da.Array:
    """One pyramid level below ``array`` (lazy).  The output shape is ``ceil(shape / f)``."""
    if method not in METHODS:
        raise ValueError(f"unknown downsampling method {method!r}; use one of {METHODS}")
    factors = tuple(int(f) for f in factors)
    if all(f == 1 for f in factors):
        return array
    # Every block but the last along an axis must hold whole windows.
    chunks = []
    for axis_chunks, f in zip(array.chunks, factors, strict=True):
        c = max(axis_chunks)
        chunks.append(max(f, c - c % f))
    if any(any(c % f for c in axis[:-1]) for axis, f in zip(array.chunks, factors, strict=True)):
        array = array.rechunk(tuple(chunks))
    out_chunks = tuple(
        tuple(math.ceil(c / f) for c in axis) for axis, f in zip(array.chunks, factors, strict=True)
    )
    return da.map_blocks(
        downsample_block, array, factors, method, chunks=out_chunks, dtype=array.dtype,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
        name=f"ozx-downsample-{method}-" + da.core.tokenize(array, factors, method),
    )


def build_pyramid(array: da.Array, factors: Sequence[Sequence[int]], method: str = "mean"
                  ) -> list[da.Array]:
    """``[array, level1, level2, ...]``, each level computed from the one before (lazily)."""
    levels = [array]
    for f in factors:
        levels.append(downsample(levels[-1], f, method))
    return levels
