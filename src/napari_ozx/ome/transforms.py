"""Coordinate transformations of OME-Zarr as napari scale/translate (and affine).

A dataset's transformations map its pixels to physical space; the multiscale's own
transformations apply after them to every level.  napari takes one transform for the largest
level and derives the other levels from their shapes, so only level 0 is needed here.

Types: ``scale``, ``translation``, ``identity``, ``rotation``, ``affine`` and (nested)
``sequence``; OME-Zarr 0.6 (RFC-5) ``input``/``output`` coordinate systems pick which of the
multiscale's transformations apply (the first one out of the datasets' output system, as
napari-ome-zarr does).  Anything else (``mapAxis``, ``displacements``, transformations stored
in a ``path``...) is skipped with a warning: the image still opens.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
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


def _warn(message: str) -> None:
    warnings.warn(message, OzxWarning, stacklevel=4)


def _matrix(t: dict, ndim: int, where: str) -> np.ndarray | None:
    """One transformation as an (ndim+1)-square homogeneous matrix; None (with a warning)
    when it is of a type we do not apply or does not fit ``ndim`` axes."""
    kind = t.get("type")
    m = np.eye(ndim + 1)
    if kind == "identity":
        return m
    if kind not in ("scale", "translation", "rotation", "affine") or kind not in t:
        _warn(f"{where}: coordinate transformation {kind!r}"
              + (" stored in a file" if "path" in t and kind not in t else "")
              + " is not supported; ignored")
        return None
    try:
        values = np.asarray(t[kind], dtype=float)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if kind in ("scale", "translation"):
        if values.shape != (ndim,):
            _warn(f"{where}: {kind} {values.ravel().tolist()} has {values.size} values for "
                  f"{ndim} axes; ignored")
            return None
        if kind == "scale":
            m[:ndim, :ndim] = np.diag(values)
        else:
            m[:ndim, ndim] = values
        return m
    if kind == "rotation" and values.shape == (ndim, ndim):
        m[:ndim, :ndim] = values
        return m
    if kind == "affine" and values.shape in ((ndim, ndim + 1), (ndim + 1, ndim + 1)):
        m[:ndim, :] = values[:ndim]
        return m
    _warn(f"{where}: {kind} matrix of shape {values.shape} does not fit {ndim} axes; ignored")
    return None


def compose_matrix(*transform_lists: Sequence[Any] | None, ndim: int,
                   where: str = "") -> np.ndarray:
    """The homogeneous matrix of every list applied in order (each later transformation to
    the output of the earlier ones)."""
    total = np.eye(ndim + 1)
    for transforms in transform_lists:
        for t in _flatten(transforms):
            m = _matrix(t, ndim, where)
            if m is not None:
                total = m @ total
    return total


def compose(
    *transform_lists: Sequence[Any] | None, ndim: int, where: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translation of ``ndim`` axes after applying every list in order
    (``x' = s2 * (s1 * x + t1) + t2``); a rotation or affine counts only by its diagonal
    (use :func:`compose_matrix` and :func:`napari_placement` to keep it)."""
    m = compose_matrix(*transform_lists, ndim=ndim, where=where)
    return np.diag(m)[:ndim].copy(), m[:ndim, ndim].copy()


def level0_transforms(ms: Mapping[str, Any]) -> list:
    """The transformation lists that place level 0 of a multiscale: its dataset's, then the
    multiscale's.  In OME-Zarr 0.6 the multiscale's are alternatives from the datasets'
    output coordinate system to others: only the first of them applies."""
    datasets = ms.get("datasets") or [{}]
    own = datasets[0].get("coordinateTransformations") if isinstance(datasets[0], dict) else None
    top = ms.get("coordinateTransformations")
    first = next((t for t in own or () if isinstance(t, dict)), None)
    output = first.get("output") if first is not None else None
    if isinstance(output, Mapping) and isinstance(top, list):
        name = output.get("name")
        top = [t for t in top if isinstance(t, dict)
               and isinstance(t.get("input"), Mapping) and t["input"].get("name") == name][:1]
    return [own, top]


def is_diagonal(m: np.ndarray) -> bool:
    linear = m[:-1, :-1]
    return bool(np.allclose(linear, np.diag(np.diag(linear))))


def drop_axis(m: np.ndarray, axis: int | None) -> np.ndarray:
    if axis is None:
        return m
    return np.delete(np.delete(m, axis, 0), axis, 1)


def napari_placement(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(scale, translate, affine) for napari: no affine when scale and translate say it all;
    else, as napari-ome-zarr does, the scale split off and the rest in ``affine``."""
    ndim = m.shape[0] - 1
    if is_diagonal(m):
        return np.diag(m)[:ndim].copy(), m[:ndim, ndim].copy(), None
    from napari.utils.transforms import Affine

    aff = Affine(affine_matrix=m)
    scale = np.asarray(aff.scale, dtype=float)
    aff.scale = np.ones(ndim)
    return scale, np.zeros(ndim), np.asarray(aff.affine_matrix, dtype=float)
