"""Pixels shared by the tests (``from helpers import random_pixels, ...``): random images, a
label image, and the reference pyramid a saved one must equal.

What an image holds, and nothing about how it is stored: the hierarchies and archives built from
these live in ``archives.py``, the session fixtures in ``conftest.py``.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_ozx.save.pyramid import build_pyramid, plan_factors


def random_pixels(shape, *, seed: int = 0, dtype="uint16", high: int = 4000) -> np.ndarray:
    """Uniform random integers in ``[0, high)`` of ``shape``, cast to ``dtype``: the same
    ``seed`` gives the same pixels, so a test can make its reference again."""
    return np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)


def reference_pyramid(img, chunks, types, method, scale=None) -> list[np.ndarray]:
    """The levels dask's lazy pyramid (``save.pyramid.build_pyramid``) makes of ``img``: what a
    saved pyramid must equal however it was built."""
    steps = plan_factors(img.shape, chunks, types, scale)
    return [np.asarray(x) for x in build_pyramid(da.from_array(img), steps, method)]


def label_pixels(shape=(8, 128, 128)) -> np.ndarray:
    """A uint8 label image with two rectangles (values 1 and 2) in every plane."""
    lab = np.zeros(shape, "uint8")
    lab[:, 16:48, 16:48] = 1
    lab[:, 64:120, 70:110] = 2
    return lab
