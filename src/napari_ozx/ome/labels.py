"""Label images (``labels/`` of an image) as napari Labels layer data."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .axes import Axes, parse_axes
from .errors import OmeMetadataError
from .layer import (
    LayerData,
    as_data,
    attrs_of,
    child,
    lazy_pyramid,
    metadata_entry,
    multiscale_of,
    pyramid,
    warn,
)
from .transforms import compose

#: Level 0 of a label image up to this size opens as one level that napari can paint (napari
#: cannot paint a pyramid); see :func:`paint_budget`.  256 MiB is a 512 x 512 x 512 uint16
#: volume or a 16k x 16k uint8 plane: what napari users paint.
PAINT_BUDGET = 256 << 20
#: layer-data keyword carrying a paintable label image's stored pyramid to the reader glue
PYRAMID_KEY = "_ozx_pyramid"

_TRANSPARENT = [0.0, 0.0, 0.0, 0.0]


def label_colormap(colors: Any, where: str) -> dict | None:
    """``image-label.colors`` as ``{value: rgba 0..1}`` (background 0 transparent unless listed).

    Values it does not list are left to napari's own label colours (see
    :func:`napari_ozx._reader`), so labels painted after opening stay distinct."""
    if not isinstance(colors, list) or not colors:
        return None
    cmap: dict = {}
    for item in colors:
        try:
            value = int(item["label-value"])
            rgba = [float(v) / 255.0 for v in item["rgba"]]
            if len(rgba) == 3:
                rgba.append(1.0)
            if len(rgba) != 4:
                raise ValueError(f"rgba {item['rgba']} has {len(rgba)} values")
        except (KeyError, TypeError, ValueError) as e:
            warn(f"{where}: image-label colour {item!r} ignored ({e})")
            continue
        cmap[value] = [min(max(v, 0.0), 1.0) for v in rgba]
    if not cmap:
        return None
    cmap.setdefault(0, _TRANSPARENT)
    return cmap


def label_features(properties: Any) -> dict[str, list] | None:
    """``image-label.properties`` as a features table with an ``index`` (label value) column."""
    if not isinstance(properties, list):
        return None
    rows = [p for p in properties if isinstance(p, dict) and "label-value" in p]
    if not rows:
        return None
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k != "label-value" and k not in keys)
    table: dict[str, list] = {"index": [int(r["label-value"]) for r in rows]}
    for k in keys:
        table[k] = [r.get(k) for r in rows]
    return table


def paint_budget() -> int:
    """Bytes of level 0 up to which a label image opens as one level napari can paint
    (:data:`PAINT_BUDGET`, or ``NAPARI_OZX_PAINT_BUDGET_MB`` from the environment)."""
    value = os.environ.get("NAPARI_OZX_PAINT_BUDGET_MB")
    try:
        return int(float(value) * (1 << 20)) if value else PAINT_BUDGET
    except ValueError:
        return PAINT_BUDGET


def label_layer(group, *, name: str, parent: tuple[Axes, np.ndarray, np.ndarray] | None,
                token: str = "", budget: int | None = None) -> LayerData:
    """Layer data of one label image.  With ``budget`` (bytes), a label image whose level 0 is
    no larger is given as that one level (``kwargs["metadata"]["paintable"]``: the caller loads
    it into memory so napari can paint it); a larger one stays a pyramid, with a warning that
    says why it cannot be painted."""
    oa = attrs_of(group)
    entry = metadata_entry(group)
    ms = multiscale_of(group, oa)
    arrays, _ = pyramid(group, ms)
    ndim = arrays[0].ndim
    axes = parse_axes(ms.get("axes"), ndim)
    if len(axes.names) != ndim:
        raise OmeMetadataError(f"multiscales[0] has {len(axes.names)} axes for {ndim} dimensions",
                               entry=entry)
    levels = lazy_pyramid(arrays, token)
    own = ms["datasets"][0].get("coordinateTransformations") or ms.get("coordinateTransformations")
    scale, translate = compose(ms["datasets"][0].get("coordinateTransformations"),
                               ms.get("coordinateTransformations"), ndim=ndim, where=entry)
    c = axes.channel_axis
    if c is not None:
        if arrays[0].shape[c] != 1:
            warn(f"{entry}: label image has {arrays[0].shape[c]} channels; showing the first")
        index = (slice(None),) * c + (0,)
        levels = [lvl[index] for lvl in levels]
        keep = [i for i in range(ndim) if i != c]
        axes, scale, translate = axes.without(c), scale[keep], translate[keep]
    if not own and parent is not None and len(parent[1]) == len(scale):
        # No transformations of its own: it lies on the parent image's grid.
        scale, translate = parent[1], parent[2]
    image_label = oa.get("image-label") or {}
    layer_name = ms.get("name") or name
    paintable, stored = False, levels
    if budget is not None:
        nbytes = math.prod(levels[0].shape) * levels[0].dtype.itemsize
        if nbytes <= budget:
            levels, paintable = levels[:1], True
        else:
            warn(f"{entry}: label image {layer_name!r} opened read-only as a pyramid: its full "
                 f"resolution is {nbytes / (1 << 20):,.0f} MiB, more than the "
                 f"{budget / (1 << 20):,.0f} MiB that open as one level napari can paint "
                 "(set NAPARI_OZX_PAINT_BUDGET_MB to raise it)")
    kwargs: dict[str, Any] = {
        "name": layer_name,
        "scale": tuple(float(v) for v in scale),
        "translate": tuple(float(v) for v in translate),
        "axis_labels": axes.names,
        "multiscale": len(levels) > 1,
        "metadata": {"ome": oa.attrs, "ome_version": oa.version, "path": group.path,
                     "paintable": paintable},
    }
    if paintable:
        # the whole stored pyramid, for the caller that loads level 0 (it keeps them, so that
        # an unchanged label image is copied on save, levels and all); not a napari keyword
        kwargs[PYRAMID_KEY] = stored
    units = axes.napari_units()
    if units is not None:
        kwargs["units"] = units
    cmap = label_colormap(image_label.get("colors"), entry)
    if cmap is not None:
        kwargs["colormap"] = cmap
    features = label_features(image_label.get("properties"))
    if features is not None:
        kwargs["features"] = features
    return as_data(levels), kwargs, "labels"


def listed_label_groups(image_group):
    """``(name, entry path, group)`` of each label image listed in ``<image>/labels`` that
    exists (a listed one that does not is a warning)."""
    labels_group = child(image_group, "labels")
    if labels_group is None or hasattr(labels_group, "shape"):
        return
    names = attrs_of(labels_group).get("labels")
    if not isinstance(names, list):
        return
    for name in names:
        if not isinstance(name, str):
            continue
        where = f"{labels_group.path}/{name}"
        group = child(labels_group, name)
        if group is None or hasattr(group, "shape"):
            warn(f"{where}: label image listed in labels/ is missing")
            continue
        yield name, where, group


def label_layers(image_group, *, parent, token: str = "", budget: int | None = None
                 ) -> list[LayerData]:
    """Every label image listed in ``<image>/labels``; a broken one is skipped with a warning."""
    out: list[LayerData] = []
    for name, where, group in listed_label_groups(image_group):
        try:
            out.append(label_layer(group, name=name, parent=parent, token=token,
                                   budget=budget))
        except OmeMetadataError as e:
            warn(f"label image {where} skipped: {e}")
    return out
