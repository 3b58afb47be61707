"""Helpers shared by the tests (``from helpers import random_pixels, ...``): pixels (random
images, a label image, the reference pyramid a saved one must equal), what napari holds (a
layer's full-resolution pixels, an archive opened the way a user opens it) and the command line
run as a user runs it.

Nothing about how pixels are stored: the hierarchies and archives built from them live in
``archives.py``, the session fixtures in ``conftest.py``.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_ozx.cli import main
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


def level0(layer) -> np.ndarray:
    """The full-resolution pixels of a napari layer, multiscale or not."""
    return np.asarray(layer.data[0] if layer.multiscale else layer.data)


def open_in_napari(viewer, path) -> list:
    """Open ``path`` as File > Open and drag-and-drop do, and check napari-ozx read it.

    plugin=None: no plugin named, napari picks the reader (a bare ``viewer.open(path)`` means
    plugin="napari", napari's builtins, in napari >= 0.5)."""
    layers = viewer.open(str(path), plugin=None)
    assert layers and all(layer.source.reader_plugin == "napari-ozx" for layer in layers)
    return layers


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``napari-ozx ARGV...`` in this process: (exit code, stdout, stderr)."""
    code = main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return code, out, err
