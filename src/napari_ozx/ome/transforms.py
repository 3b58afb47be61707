"""Coordinate transformations of OME-Zarr (scale and translation) as napari scale/translate.

A dataset's transformations map its pixels to physical space; the multiscale's own
transformations apply after them to every level.  napari takes one scale and translate for the
largest level and derives the other levels from their shapes, so only level 0 is needed here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import OzxWarning


def _flatten(transforms: Sequence[Any] | None) -> list[dict]:
    out: list[dict] = []
    for t in transforms or ():
        if not isinstance(t, dict):
            continue
        if t.get("type") == "sequence":
            out.extend(_flatten(t.get("transformations")))
        else:
            out.append(t)
    return out


def compose(
    *transform_lists: Sequence[Any] | None, ndim: int, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translation of ``ndim`` axes after applying every list in order.

    Each later transformation applies to the output of the earlier ones:
    ``x' = s2 * (s1 * x + t1) + t2``.  Types other than scale, translation and identity
    (rotation, affine, transformations stored in binary ``path``) are skipped with a warning.
    """
    scale = np.ones(ndim)
    translate = np.zeros(ndim)
    for transforms in transform_lists:
        for t in _flatten(transforms):
            kind = t.get("type")
            if kind == "identity":
                continue
            if kind not in ("scale", "translation") or kind not in t:
                warnings.warn(
                    f"{where}: coordinate transformation {kind!r}"
                    + (" stored in a file" if "path" in t else "")
                    + " is not supported; ignored",
                    OzxWarning,
                    stacklevel=2,
                )
                continue
            values = np.asarray(t[kind], dtype=float)
            if values.shape != (ndim,):
                warnings.warn(
                    f"{where}: {kind} {list(values)} has {values.size} values for {ndim} axes;"
                    " ignored",
                    OzxWarning,
                    stacklevel=2,
                )
                continue
            if kind == "scale":
                scale = scale * values
                translate = translate * values
            else:
                translate = translate + values
    return scale, translate
