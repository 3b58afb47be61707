"""Layers -> :class:`Plan`: which arrays, levels and layouts the archive will hold.

:func:`plan_layers` groups the input layers (:class:`~.inputs.LayerIn`) into one image (its
channels stacked on a ``c`` axis) and its label images, and decides for each
(:class:`ArrayPlan`) its axes, scale and translation, its levels (those given, and the steps
of the pyramid still to compute, :mod:`.pyramid`) and the napari settings kept in the
metadata.  It refuses, before anything is written, what cannot be saved together (shapes,
dtypes, geometry that differ between channels; labels without an image).

It computes no pixel and writes nothing: the job (:mod:`.job`) turns the plan into tasks,
array metadata and an archive.  Inputs come from :mod:`.inputs`; the storage layout of each
level comes from :class:`~.options.StorageOptions`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import dask.array as da
import numpy as np

from ..errors import OzxError
from ..ome.write import axes_metadata, colormap_spec, forced_space, infer_axis_names, omero_metadata
from ..read import provenance
from . import pyramid
from .inputs import LayerIn, check_dtype, split_rgb
from .options import StorageOptions

__all__ = ["ArrayPlan", "Plan", "plan_layers"]


@dataclass
class ArrayPlan:
    """One multiscale array group of the archive (the image, or one label image)."""

    path: str  # group path inside the archive ("" for the root image)
    name: str
    kind: str
    axes: list[dict]
    levels: list[da.Array]
    factors: list[tuple[float, ...]]  # cumulative, relative to level 0, one per level
    steps: list[tuple[int, ...]]  # per computed level (1..), relative to the level before
    given: int  # how many levels came with the data (the rest are computed)
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    method: str
    attrs: dict = field(default_factory=dict)  # OME attributes except multiscales
    layer: LayerIn | None = None
    channels: list = field(default_factory=list)  # napari settings of each channel (images)
    napari: dict = field(default_factory=dict)  # the "napari-ozx" attributes (rgb, colormaps)

    @property
    def types(self) -> list[str | None]:
        return [a.get("type") for a in self.axes]

    @property
    def label_name(self) -> str:
        """A label image's name under ``labels/`` (its group, and its entry in the labels
        list)."""
        return self.path.split("/", 1)[1]

    def level_path(self, k: int) -> str:
        """The path of level ``k``'s array in the archive ("0", "labels/cells/1")."""
        return f"{self.path}/{k}" if self.path else str(k)

    @property
    def n_levels(self) -> int:
        """Levels written: those given and those computed."""
        return len(self.levels) + len(self.steps)


@dataclass
class Plan:
    image: ArrayPlan
    labels: list[ArrayPlan]

    def arrays(self) -> list[ArrayPlan]:
        return [self.image, *self.labels]


def _same(a, b) -> bool:
    return np.allclose(np.asarray(a, float), np.asarray(b, float))


def _spatial_geometry(layer: LayerIn, ndim: int) -> tuple[list[float], list[float]]:
    scale = list(layer.meta.get("scale") or [1.0] * ndim)
    translate = list(layer.meta.get("translate") or [0.0] * ndim)
    return [float(v) for v in scale], [float(v) for v in translate]


def _check_joinable(ref: LayerIn, other: LayerIn) -> None:
    def fail(what, a, b):
        raise OzxError(
            f"image layer {other.name!r} cannot be saved as a channel of {ref.name!r}: its "
            f"{what} {b} differs from {a}; save it separately or make them match")

    a0, b0 = ref.levels[0], other.levels[0]
    if tuple(a0.shape) != tuple(b0.shape):
        fail("shape", tuple(a0.shape), tuple(b0.shape))
    if a0.dtype != b0.dtype:
        fail("dtype", a0.dtype, b0.dtype)
    sa, ta = _spatial_geometry(ref, a0.ndim)
    sb, tb = _spatial_geometry(other, b0.ndim)
    if not _same(sa, sb):
        fail("scale", tuple(sa), tuple(sb))
    if not _same(ta, tb):
        fail("translate", tuple(ta), tuple(tb))
    if len(ref.levels) != len(other.levels) or any(
            tuple(x.shape) != tuple(y.shape)
            for x, y in zip(ref.levels, other.levels, strict=True)):
        fail("pyramid", [tuple(x.shape) for x in ref.levels],
             [tuple(y.shape) for y in other.levels])
    if bool(ref.meta.get("rgb")) or bool(other.meta.get("rgb")):
        fail("RGB setting", bool(ref.meta.get("rgb")), bool(other.meta.get("rgb")))


def _given_factors(levels: list) -> list[tuple[float, ...]]:
    """Cumulative downsampling factors of levels that came with the data, from their shapes
    (the nearest integer when it reproduces the shape by ceil or floor)."""
    s0 = levels[0].shape
    out = []
    for lvl in levels:
        f = []
        for a, b in zip(s0, lvl.shape, strict=True):
            ratio = a / max(b, 1)
            k = max(1, round(ratio))
            f.append(float(k) if b in (math.ceil(a / k), a // k) else ratio)
        out.append(tuple(f))
    return out


def _cumulative(steps: list[tuple[int, ...]], ndim: int) -> list[tuple[float, ...]]:
    acc = [1.0] * ndim
    out = [tuple(acc)]
    for s in steps:
        acc = [a * f for a, f in zip(acc, s, strict=True)]
        out.append(tuple(acc))
    return out


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "labels"
    out, i = base, 1
    while out in taken:
        i += 1
        out = f"{base}_{i}"
    taken.add(out)
    return out


def _units(meta: Mapping, ndim: int) -> list:
    units = meta.get("units")
    if units is None:
        return [None] * ndim
    if isinstance(units, (str,)) or not isinstance(units, Sequence):
        return [units] * ndim
    return list(units) + [None] * (ndim - len(units))


class Pyramid(NamedTuple):
    """The levels of one array: those given, and the steps of those still to compute."""

    levels: list[da.Array]  # given, level 0 first
    steps: list[tuple[int, ...]]  # per computed level, relative to the level before
    given: int  # how many levels came with the data


def _pyramid(levels: list[da.Array], types: Sequence[str | None], scale: Sequence[float],
             chunks: Sequence[int], *, pyramid_levels: int | str | None) -> Pyramid:
    """A multiscale input is kept as it is; a single level gets ``steps`` to compute later."""
    if len(levels) > 1:
        return Pyramid(levels, [], len(levels))
    if pyramid_levels is None and not pyramid.needs_pyramid(levels[0].shape, types,
                                                            levels[0].dtype.itemsize):
        return Pyramid(levels, [], 1)  # small enough for napari as it is: a plain layer
    # "full": down to one chunk, whatever the size
    wanted = None if pyramid_levels == "full" else pyramid_levels
    if isinstance(wanted, str):
        raise TypeError(f"pyramid_levels must be None, 'full' or a number of levels, "
                        f"not {pyramid_levels!r}")
    steps = pyramid.plan_factors(levels[0].shape, chunks, types, scale, levels=wanted)
    return Pyramid(levels, steps, 1)


def plan_layers(
    layers: Sequence[LayerIn],
    *,
    storage: StorageOptions,
    name: str | None = None,
    pyramid_levels: int | str | None = None,
    image_method: str = "mean",
    labels_method: str = "mode",
    default_name: str | None = None,
) -> Plan:
    """Group the layers into one image (channels on ``c``) and its label images."""
    if image_method not in pyramid.METHODS:
        raise ValueError(f"image_method must be one of {pyramid.METHODS}, not {image_method!r}")
    if labels_method not in pyramid.LABEL_METHODS:
        raise ValueError(f"labels_method must be one of {pyramid.LABEL_METHODS} (a label value "
                         f"not in the input must never appear), not {labels_method!r}")
    images = [layer for layer in layers if layer.kind == "image"]
    labels = [layer for layer in layers if layer.kind == "labels"]
    if not layers:
        raise OzxError("nothing to save: no image or labels layer")
    if not images:
        raise OzxError(
            "OME-Zarr keeps label images inside an image: select an image layer to save "
            f"labels {', '.join(repr(x.name) for x in labels)} with")
    expanded: list[LayerIn] = []
    for layer in images:
        expanded.extend(split_rgb(layer) if layer.meta.get("rgb") else [layer])
    if any(layer.meta.get("rgb") for layer in images) and len(images) > 1:
        _check_joinable(images[0], images[1])  # raises: RGB layers are saved alone
    ref = expanded[0]
    for other in expanded[1:]:
        _check_joinable(ref, other)
    ndim = ref.levels[0].ndim
    units = _units(ref.meta, ndim)
    spatial = infer_axis_names(ndim, ref.meta.get("axis_labels"), units)
    scale, translate = _spatial_geometry(ref, ndim)
    multichannel = len(expanded) > 1
    if multichannel:
        # c after a time axis, or after an unknown leading one (then saved as time)
        c = 1 if axes_metadata(spatial, units)[0].get("type") in ("time", None) else 0
        names = spatial[:c] + ["c"] + spatial[c:]
        units = units[:c] + [None] + units[c:]
        scale = scale[:c] + [1.0] + scale[c:]
        translate = translate[:c] + [0.0] + translate[c:]
        # channels split from one stored array (napari's channel_axis) stack back into it
        levels = [provenance.restack([x.levels[k] for x in expanded], axis=c)
                  for k in range(len(ref.levels))]
    else:
        names = spatial
        levels = list(ref.levels)
    axes = axes_metadata(names, units)
    types = [a.get("type") for a in axes]
    chunks0, _ = storage.layout(levels[0].shape, types, levels[0].dtype)
    levels, steps, given = _pyramid(levels, _planned_types(types, names, units), scale,
                                    chunks0, pyramid_levels=pyramid_levels)
    factors = _given_factors(levels) if given > 1 else _cumulative(steps, len(names))
    channels = [{"name": x.name, "colormap": x.meta.get("colormap", "gray"),
                 "contrast_limits": x.meta.get("contrast_limits"),
                 "visible": x.meta.get("visible", True)} for x in expanded]
    for layer in expanded:
        check_dtype(layer)
    for lab in labels:
        check_dtype(lab)
    title = name or (ref.name if not multichannel else os.path.commonprefix(
        [x.name for x in expanded]).strip(" _-[") or default_name or ref.name)
    image = ArrayPlan(
        path="", name=str(title), kind="image", axes=axes, levels=levels, factors=factors,
        steps=steps, given=given, scale=tuple(scale), translate=tuple(translate),
        method=image_method,
        attrs={"omero": omero_metadata(channels, levels[0].dtype)},
        layer=ref, channels=channels, napari=_napari_attrs(images, expanded),
    )
    taken: set[str] = set()
    label_plans = []
    spatial_types = [t for t in types if t != "channel"]
    image_steps = [tuple(f for f, t in zip(s, types, strict=True) if t != "channel")
                   for s in steps]
    for lab in labels:
        lv = list(lab.levels)
        lnd = lv[0].ndim
        lnames = (spatial if lnd == len(spatial) and not _meaningful(lab.meta, lnd)
                  else infer_axis_names(lnd, lab.meta.get("axis_labels")))
        laxes = axes_metadata(lnames, _units(lab.meta, lnd))
        ltypes = [a.get("type") for a in laxes]
        lscale, ltranslate = _spatial_geometry(lab, lnd)
        lchunks, _ = storage.layout(lv[0].shape, ltypes, lv[0].dtype)
        if len(lv) > 1:
            lsteps, lgiven = [], len(lv)
        elif (lnd == len(spatial_types) and given == 1
              and tuple(lv[0].shape) == tuple(s for s, t in zip(levels[0].shape, types,
                                                                strict=True)
                                             if t != "channel")):
            lsteps, lgiven = image_steps, 1  # same grid as the image: same pyramid
        else:
            lv, lsteps, lgiven = _pyramid(lv, _planned_types(ltypes, lnames,
                                                             _units(lab.meta, lnd)),
                                          lscale, lchunks, pyramid_levels=pyramid_levels)
        lfactors = _given_factors(lv) if lgiven > 1 else _cumulative(lsteps, lnd)
        if not np.issubdtype(lv[0].dtype, np.integer):
            raise OzxError(f"labels layer {lab.name!r} has dtype {lv[0].dtype}; label images "
                           "hold integers")
        label_plans.append(ArrayPlan(
            path=f"labels/{_safe_name(lab.name, taken)}", name=lab.name, kind="labels",
            axes=laxes, levels=lv, factors=lfactors, steps=lsteps, given=lgiven,
            scale=tuple(lscale), translate=tuple(ltranslate), method=labels_method, layer=lab,
        ))
    return Plan(image, label_plans)


def _meaningful(meta: Mapping, ndim: int) -> bool:
    labels = meta.get("axis_labels")
    return labels is not None and infer_axis_names(ndim, labels) == [str(x) for x in labels]


def _planned_types(types: list, names: list, units: list) -> list:
    """Axis types for planning the pyramid: an axis typed space only because OME-Zarr wants
    one there (:func:`.ome.write.forced_space`) is not downsampled."""
    forced = forced_space(names, units)
    return [None if i in forced else t for i, t in enumerate(types)]


def _napari_attrs(images: list[LayerIn], expanded: list[LayerIn]) -> dict:
    """The ``napari-ozx`` attributes of the image: what OME-Zarr has no word for (an RGB(A)
    layer's colour axis, colormaps one OMERO colour cannot hold)."""
    out: dict[str, Any] = {}
    if len(images) == 1 and images[0].meta.get("rgb"):
        out["rgb"] = True
    cmaps = [colormap_spec(x.meta.get("colormap")) for x in expanded]
    if not out.get("rgb") and any(c is not None for c in cmaps):
        out["colormaps"] = cmaps
    return {"version": 1, **out} if out else {}
