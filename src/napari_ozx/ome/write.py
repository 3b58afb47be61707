"""napari layer settings -> OME-Zarr 0.5 metadata (the write direction of this package).

Pure functions: they take names, shapes, scales, colours and return the JSON-ready attributes
(``multiscales``, ``omero``, ``image-label``); they never touch arrays or files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "OME_VERSION",
    "axes_metadata",
    "infer_axis_names",
    "axis_type",
    "unit_name",
    "level_transforms",
    "multiscales_metadata",
    "colormap_hex",
    "omero_metadata",
    "image_label_metadata",
    "properties_from_features",
]

OME_VERSION = "0.5"

_TYPES = {
    "t": "time", "time": "time",
    "c": "channel", "ch": "channel", "channel": "channel",
    "z": "space", "y": "space", "x": "space",
}
_NUMERIC = re.compile(r"^-?\d+$")


def axis_type(name: str) -> str | None:
    return _TYPES.get(name.lower())


def infer_axis_names(ndim: int, labels: Sequence[str] | None = None) -> list[str]:
    """Axis names of a layer without its channel axis.

    napari's own labels (``'-2'``, ``'-1'``, ``'0'``) mean nothing: then ``yx``, ``zyx``,
    ``tzyx`` are used; meaningful, distinct labels are kept.
    """
    if labels is not None and len(labels) == ndim:
        names = [str(n) for n in labels]
        meaningful = all(n and not _NUMERIC.match(n) for n in names)
        if meaningful and len(set(names)) == ndim:
            return names
    defaults = ["t", "z", "y", "x"]
    if ndim <= 4:
        return defaults[-ndim:]
    return [f"dim_{i}" for i in range(ndim - 3)] + ["z", "y", "x"]


def unit_name(unit: Any) -> str | None:
    """A UDUNITS-style name (``micrometer``) for a pint unit or string; None for pixels."""
    if unit is None:
        return None
    text = str(unit).strip()
    if not text or text in ("pixel", "px", "dimensionless", ""):
        return None
    try:
        import pint

        text = str(pint.get_application_registry().Unit(text))
    except Exception:
        pass
    return None if text in ("pixel", "dimensionless", "") else text


def axes_metadata(names: Sequence[str], units: Sequence[Any] | None = None) -> list[dict]:
    """``multiscales[].axes``: names, types (space for the last unknown ones) and units."""
    ndim = len(names)
    types = [axis_type(n) for n in names]
    # Unknown names: the trailing ones (up to 3 counting known space axes) are space.
    for i in range(ndim - 1, -1, -1):
        if types[i] is None and sum(t == "space" for t in types) < 3:
            types[i] = "space"
        elif types[i] not in (None, "space"):
            break
    out = []
    for i, name in enumerate(names):
        ax: dict[str, Any] = {"name": name}
        if types[i] is not None:
            ax["type"] = types[i]
        u = unit_name(units[i]) if units is not None and i < len(units) else None
        if u is not None and types[i] in ("space", "time"):
            ax["unit"] = u
        out.append(ax)
    return out


def level_transforms(
    scale: Sequence[float], translate: Sequence[float], factors: Sequence[float]
) -> list[dict]:
    """Dataset ``coordinateTransformations`` of a level downsampled by ``factors`` (cumulative,
    relative to level 0): the scale grows by the factor and the origin moves to the centre of
    the level's first pixel."""
    s = [float(a) * float(f) for a, f in zip(scale, factors)]
    t = [float(b) + (float(f) - 1.0) * float(a) / 2.0
         for a, b, f in zip(scale, translate, factors)]
    out: list[dict] = [{"type": "scale", "scale": s}]
    if any(v != 0.0 for v in t):
        out.append({"type": "translation", "translation": t})
    return out


def multiscales_metadata(
    *,
    name: str,
    axes: list[dict],
    paths: Sequence[str],
    scale: Sequence[float],
    translate: Sequence[float],
    factors: Sequence[Sequence[float]],
    method: str | None = None,
) -> list[dict]:
    """``multiscales`` of OME-Zarr 0.5 (a list of one)."""
    datasets = [
        {"path": p, "coordinateTransformations": level_transforms(scale, translate, f)}
        for p, f in zip(paths, factors)
    ]
    ms: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets}
    if method is not None and len(paths) > 1:
        ms["type"] = method
        ms["metadata"] = {
            "method": f"napari_ozx.pyramid.downsample({method!r})",
            "description": "factor 2 on y/x (and z while isotropic) per level",
        }
    return [ms]


# napari's single-colour colormaps (black to that colour), known without importing napari
_NAMED_TOPS = {"gray": "FFFFFF", "grey": "FFFFFF", "red": "FF0000", "green": "00FF00",
               "blue": "0000FF", "magenta": "FF00FF", "cyan": "00FFFF", "yellow": "FFFF00"}


def colormap_hex(colormap: Any) -> str:
    """``RRGGBB`` of the colour a napari colormap reaches at its top (white for grey)."""
    colors = None
    if isinstance(colormap, Mapping):
        colors = colormap.get("colors")
    elif hasattr(colormap, "colors"):
        colors = colormap.colors
    elif isinstance(colormap, str) and colormap.lower() in _NAMED_TOPS:
        return _NAMED_TOPS[colormap.lower()]
    elif isinstance(colormap, str):
        try:
            from napari.utils.colormaps import ensure_colormap

            colors = ensure_colormap(colormap).colors
        except Exception:
            colors = None
    if colors is None or len(colors) == 0:
        return "FFFFFF"
    top = np.asarray(colors, dtype=float)[-1][:3]
    return "".join(f"{int(round(min(max(v, 0.0), 1.0) * 255)):02X}" for v in top)


def _window(limits: Sequence[float] | None, dtype: np.dtype) -> dict:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    elif dtype.kind == "b":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = None, None
    start, end = (float(limits[0]), float(limits[1])) if limits is not None else (lo, hi)
    if lo is None:
        lo, hi = min(start, 0.0), max(end, 1.0)
    w = {"start": start, "end": end, "min": min(lo, start), "max": max(hi, end)}
    return {k: (v if math.isfinite(v) else 0.0) for k, v in w.items()}


def omero_metadata(channels: Sequence[Mapping[str, Any]], dtype: np.dtype) -> dict:
    """``omero`` with one entry per channel: ``label``, ``color``, ``window``, ``active``.

    Each channel mapping may hold ``name``, ``colormap``, ``contrast_limits``, ``visible``
    (napari layer settings).
    """
    out = []
    for ch in channels:
        limits = ch.get("contrast_limits")
        out.append({
            "label": str(ch.get("name", "")),
            "color": colormap_hex(ch.get("colormap")),
            "window": _window(limits, dtype),
            "active": bool(ch.get("visible", True)),
        })
    return {"channels": out, "rdefs": {"model": "color"}}


def _json_scalar(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def properties_from_features(features: Any, values: Sequence[int] | None = None) -> list[dict]:
    """``image-label.properties`` from a napari features table.

    The row's label value comes from an ``index`` column when there is one (napari's
    convention), else row ``i`` describes label ``i``.  Only rows for ``values`` (the labels
    present) are kept when given.
    """
    if features is None:
        return []
    try:
        import pandas as pd

        table = pd.DataFrame(features)
    except Exception:
        return []
    if table.empty:
        return []
    if "index" in table.columns:
        label_values = [int(v) for v in table["index"]]
        table = table.drop(columns=["index"])
    else:
        label_values = list(range(len(table)))
    keep = None if values is None else {int(v) for v in values}
    out = []
    for value, (_, row) in zip(label_values, table.iterrows()):
        if keep is not None and value not in keep:
            continue
        entry = {"label-value": value}
        entry.update({str(k): _json_scalar(v) for k, v in row.items()})
        out.append(entry)
    return out


def image_label_metadata(
    values: Sequence[int],
    rgba: np.ndarray,
    *,
    properties: list[dict] | None = None,
    source: str = "../../",
) -> dict:
    """``image-label``: a colour for each label value present (RGBA 0..255), properties and
    the ``source`` image."""
    colors = []
    for v, c in zip(values, np.asarray(rgba, dtype=float)):
        colors.append({
            "label-value": int(v),
            "rgba": [int(round(min(max(x, 0.0), 1.0) * 255)) for x in c[:4]],
        })
    out: dict[str, Any] = {"colors": colors, "source": {"image": source}}
    if properties:
        out["properties"] = properties
    return out
