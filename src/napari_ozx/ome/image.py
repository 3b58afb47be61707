"""A multiscale image group as napari layer data: one image layer per channel, plus labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from .axes import Axes, parse_axes
from .channels import channel_settings
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
from .transforms import compose

# Without contrast limits napari reads the smallest level whole to compute them; above this
# many values it does not get the chance.
MAX_SCANNED = 1 << 24


def image_geometry(group, ms: dict, arrays: list) -> tuple[Axes, np.ndarray, np.ndarray]:
    """Axes, and scale/translate of level 0 (all axes, channel axis included)."""
    ndim = arrays[0].ndim
    entry = metadata_entry(group)
    axes = parse_axes(ms.get("axes"), ndim)
    if len(axes.names) != ndim:
        raise OmeMetadataError(
            f"multiscales[0] has {len(axes.names)} axes but dataset "
            f"{ms['datasets'][0]['path']!r} has {ndim} dimensions",
            entry=entry,
        )
    scale, translate = compose(
        ms["datasets"][0].get("coordinateTransformations"),
        ms.get("coordinateTransformations"),
        ndim=ndim,
        where=entry,
    )
    return axes, scale, translate


def image_kwargs(
    group, oa, ms: dict, arrays: list, *, name: str
) -> tuple[dict[str, Any], Axes, np.ndarray, np.ndarray]:
    """napari ``add_image`` keywords for a multiscale image (without ``data``)."""
    axes, scale, translate = image_geometry(group, ms, arrays)
    c = axes.channel_axis
    n_channels = arrays[0].shape[c] if c is not None else 1
    spatial = axes.without(c)
    keep = [i for i in range(arrays[0].ndim) if i != c]
    kwargs: dict[str, Any] = {
        "scale": tuple(float(v) for v in scale[keep]),
        "translate": tuple(float(v) for v in translate[keep]),
        "axis_labels": spatial.names,
        "multiscale": len(arrays) > 1,
    }
    units = spatial.napari_units()
    if units is not None:
        kwargs["units"] = units
    meta = {"ome": oa.attrs, "ome_version": oa.version, "path": group.path or "/"}
    settings = channel_settings(oa.get("omero"), n_channels, arrays[0].dtype)
    if c is not None:
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


def image_layers(group, *, name: str, token: str = "", with_labels: bool = True,
                 paint_budget: int | None = None) -> list[LayerData]:
    """Layer data for the image in ``group`` (which has ``multiscales``) and its labels."""
    oa = attrs_of(group)
    ms = multiscale_of(group, oa)
    arrays, _ = pyramid(group, ms)
    name = ms.get("name") or name
    kwargs, axes, scale, translate = image_kwargs(group, oa, ms, arrays, name=str(name))
    layers: list[LayerData] = [(as_data(lazy_pyramid(arrays, token)), kwargs, "image")]
    if with_labels:
        c = axes.channel_axis
        keep = [i for i in range(len(scale)) if i != c]
        parent = (axes.without(c), scale[keep], translate[keep])
        layers.extend(label_layers(group, parent=parent, token=token, budget=paint_budget))
    return layers
