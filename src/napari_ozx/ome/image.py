"""A multiscale image group as napari layer data: one image layer per channel, plus labels."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .axes import Axes, parse_axes
from .channels import apply_napari_attrs, channel_settings, napari_attrs
from .errors import OmeMetadataError
from .labels import label_layers
from .layer import (
    LayerData,
    as_data,
    attrs_of,
    lazy_pyramid,
    metadata_entry,
    multiscale_of,
    pyramid,
    warn,
)
from .transforms import compose_matrix, drop_axis, level0_transforms, napari_placement

# Without contrast limits napari reads the smallest level whole to compute them; above this
# many values it does not get the chance.
MAX_SCANNED = 1 << 24


def image_geometry(group, ms: dict, arrays: list, parent: list | None = None
                   ) -> tuple[Axes, np.ndarray]:
    """Axes, and the homogeneous matrix placing level 0 (all axes, channel axis included);
    ``parent``: transformation lists that apply after the image's own (a scene's)."""
    ndim = arrays[0].ndim
    entry = metadata_entry(group)
    axes = parse_axes(_axes_of(ms), ndim)
    if len(axes.names) != ndim:
        raise OmeMetadataError(
            f"multiscales[0] has {len(axes.names)} axes but dataset "
            f"{ms['datasets'][0]['path']!r} has {ndim} dimensions",
            entry=entry,
        )
    lists = level0_transforms(ms) if parent is None else [
        ms["datasets"][0].get("coordinateTransformations"), *parent]
    return axes, compose_matrix(*lists, ndim=ndim, where=entry)


def _axes_of(ms: dict):
    """``axes`` (0.4, 0.5) or, in 0.6, those of the first coordinate system."""
    if ms.get("axes") is None and isinstance(ms.get("coordinateSystems"), list):
        systems = [cs for cs in ms["coordinateSystems"] if isinstance(cs, dict)]
        if systems:
            return systems[0].get("axes")
    return ms.get("axes")


def image_kwargs(
    group, oa, ms: dict, arrays: list, *, name: str, parent: list | None = None
) -> tuple[dict[str, Any], Axes, np.ndarray, np.ndarray]:
    """napari ``add_image`` keywords for a multiscale image (without ``data``)."""
    axes, matrix = image_geometry(group, ms, arrays, parent)
    scale, translate = np.diag(matrix)[:-1].copy(), matrix[:-1, -1].copy()
    c = axes.channel_axis
    n_channels = arrays[0].shape[c] if c is not None else 1
    spatial = axes.without(c)
    s, t, affine = napari_placement(drop_axis(matrix, c))
    kwargs: dict[str, Any] = {
        "scale": tuple(float(v) for v in s),
        "translate": tuple(float(v) for v in t),
        "axis_labels": spatial.names,
        "multiscale": len(arrays) > 1,
    }
    if affine is not None:
        kwargs["affine"] = affine
    units = spatial.napari_units()
    if units is not None:
        kwargs["units"] = units
    meta = {"ome": oa.attrs, "ome_version": oa.version, "path": group.path or "/"}
    settings = channel_settings(oa.get("omero"), n_channels, arrays[0].dtype)
    extra = napari_attrs(group.attrs)
    apply_napari_attrs(settings, extra, n_channels)
    if c is not None and is_rgb(extra, n_channels):
        # saved from an RGB(A) layer: one layer again, colour last (see rgb_levels)
        kwargs["rgb"] = True
        kwargs["metadata"] = dict(meta, rgb_axis=c)
        kwargs["name"] = name
        for key in ("contrast_limits", "visible"):
            if key in settings:
                kwargs[key] = settings[key][0]
    elif c is not None:
        kwargs["channel_axis"] = c
        kwargs["metadata"] = [dict(meta, channel=i) for i in range(n_channels)]
        kwargs.update(settings)
        kwargs.setdefault("name", [f"{name} [{i}]" for i in range(n_channels)])
    else:
        kwargs["metadata"] = meta
        kwargs.update({k: v[0] for k, v in settings.items()})
        kwargs.setdefault("name", name)
    if "contrast_limits" not in kwargs and arrays[-1].size > MAX_SCANNED:
        # No window and a float type: napari would compute limits from the smallest level,
        # reading all of it.  Too big for that: a fixed range, and say so.
        warn(f"{metadata_entry(group)}: no omero window for {arrays[0].dtype} data and its "
             f"smallest level has {arrays[-1].size:,} values; contrast limits set to [0, 1]")
        kwargs["contrast_limits"] = [[0.0, 1.0]] * n_channels if c is not None else [0.0, 1.0]
    return kwargs, axes, scale, translate


def is_rgb(extra: dict, n_channels: int) -> bool:
    """Saved by napari-ozx from an RGB(A) layer (``napari-ozx: {"rgb": true}``)."""
    return extra.get("rgb") is True and n_channels in (3, 4)


def rgb_levels(levels: list, c: int) -> list:
    """The channel axis moved last, as napari wants RGB(A) data."""
    return [da.moveaxis(lvl, c, -1) for lvl in levels]


def image_layers(group, *, name: str, token: str = "", with_labels: bool = True,
                 paint_budget: int | None = None, parent: list | None = None
                 ) -> list[LayerData]:
    """Layer data for the image in ``group`` (which has ``multiscales``) and its labels;
    ``parent``: the transformation lists that place it in a scene, after its dataset's."""
    oa = attrs_of(group)
    ms = multiscale_of(group, oa)
    arrays, _ = pyramid(group, ms)
    name = ms.get("name") or name
    kwargs, axes, scale, translate = image_kwargs(group, oa, ms, arrays, name=str(name),
                                                  parent=parent)
    levels = lazy_pyramid(arrays, token)
    if kwargs.get("rgb"):
        levels = rgb_levels(levels, kwargs["metadata"]["rgb_axis"])
    layers: list[LayerData] = [(as_data(levels), kwargs, "image")]
    if with_labels:
        c = axes.channel_axis
        keep = [i for i in range(len(scale)) if i != c]
        parent_grid = (axes.without(c), scale[keep], translate[keep])
        labels = label_layers(group, parent=parent_grid, token=token, budget=paint_budget)
        if "affine" in kwargs:  # labels on the image's grid share its placement
            for _, lkw, _ in labels:
                if np.allclose(lkw["scale"], scale[keep]) and np.allclose(lkw["translate"],
                                                                          translate[keep]):
                    lkw["scale"], lkw["translate"] = kwargs["scale"], kwargs["translate"]
                    lkw["affine"] = kwargs["affine"]
        layers.extend(labels)
    return layers
