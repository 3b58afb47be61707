"""Sample data: a small ``.ozx`` made on the spot (synthetic cells, two channels, labels).

Made by our own code, offline: pixels from a seeded generator, OME-Zarr 0.5 metadata written
with zarr, packed by :func:`napari_ozx.tools.pack.pack` (RFC-9 order, STORED, ZIP64, jsonFirst).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import zarr

SIZE = 512
N_CELLS = 24
CHANNELS: tuple[dict[str, Any], ...] = (  # omero channels (JSON)
    {"label": "nuclei", "color": "0000FF", "window": {"start": 0, "end": 3000, "min": 0,
                                                      "max": 65535}, "active": True},
    {"label": "membrane", "color": "00FF00", "window": {"start": 0, "end": 2000, "min": 0,
                                                        "max": 65535}, "active": True},
)
PIXEL_SIZE = 0.65  # micrometer
LABEL_COLORS = N_CELLS  # cells with an explicit image-label colour


def _cells(size: int = SIZE, n: int = N_CELLS, seed: int = 4):
    """Two channels (nuclei, membranes) and a label image of the nuclei."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    nuclei = np.zeros((size, size), np.float32)
    membrane = np.zeros((size, size), np.float32)
    labels = np.zeros((size, size), np.uint16)
    centres = rng.uniform(40, size - 40, size=(n, 2))
    radii = rng.uniform(12, 22, size=n)
    for i, ((cy, cx), r) in enumerate(zip(centres, radii, strict=True), start=1):
        d = np.hypot(yy - cy, xx - cx)
        nuclei += 2500 * np.exp(-((d / (0.6 * r)) ** 2))
        membrane += 1600 * np.exp(-(((d - 1.6 * r) / 2.5) ** 2))
        labels[(d < 0.75 * r) & (labels == 0)] = i
    noise = rng.normal(100, 20, size=(2, size, size))
    image = np.stack([nuclei, membrane]) + noise
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def _levels(a: np.ndarray, n: int) -> list[np.ndarray]:
    out = [a]
    for _ in range(n - 1):
        out.append(out[-1][..., ::2, ::2])
    return out


def _multiscales(axes: list[dict], ndim_scale: list[float], n_levels: int, name: str) -> list:
    datasets = []
    for level in range(n_levels):
        f = 2**level
        scale = [s * (f if i >= len(ndim_scale) - 2 else 1) for i, s in enumerate(ndim_scale)]
        datasets.append({"path": str(level),
                         "coordinateTransformations": [{"type": "scale", "scale": scale}]})
    return [{"name": name, "axes": axes, "datasets": datasets}]


def write_sample_directory(root: str | os.PathLike, n_levels: int = 2) -> Path:
    """The sample as an OME-Zarr 0.5 directory (sharded arrays) under ``root``."""
    image, labels = _cells()
    root = Path(root)
    space = {"type": "space", "unit": "micrometer"}
    yx = [{"name": "y", **space}, {"name": "x", **space}]
    g = zarr.open_group(str(root), mode="w", zarr_format=3)
    for level, a in enumerate(_levels(image, n_levels)):
        arr = g.create_array(str(level), shape=a.shape, dtype=a.dtype, chunks=(1, 128, 128),
                             shards=(1, 256, 256), dimension_names=["c", "y", "x"])
        arr[:] = a
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": _multiscales([{"name": "c", "type": "channel"}, *yx],
                                    [1.0, PIXEL_SIZE, PIXEL_SIZE], n_levels, "cells"),
        "omero": {"channels": list(CHANNELS), "rdefs": {"model": "color"}},
    }
    lg = g.create_group("labels")
    lg.attrs["ome"] = {"version": "0.5", "labels": ["masks"]}
    ng = lg.create_group("masks")
    for level, a in enumerate(_levels(labels, n_levels)):
        arr = ng.create_array(str(level), shape=a.shape, dtype=a.dtype, chunks=(128, 128),
                              shards=(256, 256), dimension_names=["y", "x"])
        arr[:] = a
    rng = np.random.default_rng(7)
    colors: list[dict[str, Any]] = [
        {"label-value": i, "rgba": [int(v) for v in rng.integers(64, 256, 3)] + [255]}
        for i in range(1, LABEL_COLORS + 1)]
    areas = np.bincount(labels.ravel(), minlength=N_CELLS + 1)
    ng.attrs["ome"] = {
        "version": "0.5",
        "multiscales": _multiscales(yx, [PIXEL_SIZE, PIXEL_SIZE], n_levels, "masks"),
        "image-label": {
            "version": "0.5",
            "colors": colors,
            "properties": [{"label-value": i, "area (pixels)": int(areas[i])}
                           for i in range(1, N_CELLS + 1) if areas[i]],
            "source": {"image": "../../"},
        },
    }
    return root


def write_sample(path: str | os.PathLike) -> Path:
    """Write the sample archive to ``path`` (an ``.ozx``) and return the path."""
    from .tools.pack import pack

    with tempfile.TemporaryDirectory(prefix="napari-ozx-sample-") as d:
        src = write_sample_directory(Path(d) / "cells.zarr")
        pack(src, path, overwrite=True)
    return Path(path)


def sample_path() -> Path:
    """The sample archive, made once per user in the temporary directory."""
    out = Path(tempfile.gettempdir()) / f"napari-ozx-sample-{os.getuid()}" / "cells.ozx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        write_sample(tmp)
        os.replace(tmp, out)
    return out


def sample_cells() -> list:
    """npe2 sample-data command: the layers of the sample archive, read by our reader."""
    from ._reader import read_ozx

    return read_ozx(str(sample_path()))
