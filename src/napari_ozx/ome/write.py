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
    "forced_space",
    "infer_axis_names",
    "axis_type",
    "unit_name",
    "level_transforms",
    "multiscales_metadata",
    "colormap_hex",
    "omero_metadata",
    "sample_window",
    "colormap_spec",
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


def infer_axis_names(ndim: int, labels: Sequence[str] | None = None,
                     units: Sequence[Any] | None = None) -> list[str]:
    """Axis names of a layer without its channel axis.

    Meaningful, distinct labels are kept.  napari's own labels (``'-3'``, ``'-2'``, ``'-1'``)
    mean nothing: the last two axes are then ``y`` and ``x`` (napari shows them as the plane);
    a leading axis is ``z`` or ``t`` only when its unit says length or time, else it is
    ``dim_<i>``, an axis of unknown type that is never downsampled (see :func:`axes_metadata`).
    """
    if labels is not None and len(labels) == ndim:
        names = [str(n) for n in labels]
        meaningful = all(n and not _NUMERIC.match(n) for n in names)
        if meaningful and len(set(names)) == ndim:
            return names
    names = ["y", "x"][-ndim:] if ndim else []
    for i in range(ndim - len(names) - 1, -1, -1):
        kind = unit_kind(units[i]) if units is not None and i < len(units) else None
        name = None if kind is None else {"space": "z", "time": "t"}.get(kind)
        if name is None or name in names:
            name = f"dim_{i}"
        names.insert(0, name)
    return names


def unit_kind(unit: Any) -> str | None:
    """``"space"`` for a length unit, ``"time"`` for a time unit, else None (pixels, none)."""
    name = unit_name(unit)
    if name is None:
        return None
    try:
        import pint

        dim = str(pint.get_application_registry().Unit(name).dimensionality)
    except Exception:
        return None
    return {"[length]": "space", "[time]": "time"}.get(dim)


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


def _typed(names: Sequence[str], units: Sequence[Any] | None
           ) -> tuple[list[str], list[str | None], set[int], list]:
    """(names, types, indices typed space only to satisfy OME-Zarr, units) of
    :func:`axes_metadata`."""
    ndim = len(names)
    # one unit per axis: missing ones are None, extra ones are dropped
    units = (list(units) if units is not None else [])[:ndim]
    units = units + [None] * (ndim - len(units))
    types = [axis_type(n) or unit_kind(u) for n, u in zip(names, units, strict=True)]
    for i in range(max(0, ndim - 2), ndim):
        if types[i] is None:
            types[i] = "space"
    others = [i for i, t in enumerate(types) if t not in ("space", "time")]
    untyped = [i for i in others if types[i] is None]
    if len(others) > 1 and "time" not in types and untyped and untyped[0] == 0:
        types[0] = "time"
    names = list(names)
    if types[0] == "time" and re.match(r"^dim_\d+$", names[0]) and "t" not in names:
        names[0] = "t"
    # Still more than one axis of channel or unknown type (OME-Zarr allows one): the unknown
    # one nearest the plane is saved as space, while there is room for a third space axis.
    forced: set[int] = set()
    while True:
        others = [i for i, t in enumerate(types) if t not in ("space", "time")]
        untyped = [i for i in others if types[i] is None]
        if len(others) <= 1 or not untyped or types.count("space") >= 3:
            break
        i = untyped[-1]
        types[i] = "space"
        forced.add(i)
        if re.match(r"^dim_\d+$", names[i]) and "z" not in names:
            names[i] = "z"
    return names, types, forced, units


def forced_space(names: Sequence[str], units: Sequence[Any] | None = None) -> set[int]:
    """Axes :func:`axes_metadata` types as space only because OME-Zarr wants an axis typed
    there: they are not known to be spatial, so they are never downsampled."""
    return _typed(names, units)[2]


def axes_metadata(names: Sequence[str], units: Sequence[Any] | None = None) -> list[dict]:
    """``multiscales[].axes``: names, types and units.

    A type comes from the name (``t``, ``c``, ``z``, ``y``, ``x``...) or else the unit (length:
    space, time: time); the last two axes, when nothing else is known of them, are space
    (napari shows them as the plane).  Any other axis has no type: it is never downsampled.
    OME-Zarr allows one such axis (in the place of the channel axis): when there are more, or
    a channel axis as well, the first untyped one is saved as time, and any further one, next
    to the plane, as space (``z``; see :func:`forced_space`); neither is downsampled.
    """
    names, types, _, units = _typed(names, units)
    out = []
    for i, name in enumerate(names):
        ax: dict[str, Any] = {"name": name}
        if types[i] is not None:
            ax["type"] = types[i]
        u = unit_name(units[i])
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
    s = [float(a) * float(f) for a, f in zip(scale, factors, strict=True)]
    t = [float(b) + (float(f) - 1.0) * float(a) / 2.0
         for a, b, f in zip(scale, translate, factors, strict=True)]
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
        for p, f in zip(paths, factors, strict=True)
    ]
    ms: dict[str, Any] = {"name": name, "axes": axes, "datasets": datasets}
    if method is not None and len(paths) > 1:
        ms["type"] = method
        ms["metadata"] = {
            "method": f"napari_ozx.save.pyramid.downsample({method!r})",
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


#: the percentiles of a window are taken over at most about this many values
PERCENTILE_VALUES = 1 << 20


def sample_window(sample: np.ndarray, dtype: np.dtype) -> tuple[float, float, float, float] | None:
    """(start, end, min, max) of a window for ``sample`` (pixels of one channel): start/end the
    0.1 and 99.9 percentiles (one hot pixel does not set the contrast), min/max the values'
    range; None when the sample has no finite value."""
    if np.dtype(dtype).kind == "b":
        return 0.0, 1.0, 0.0, 1.0
    values = np.asarray(sample).ravel()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    vmin, vmax = float(values.min()), float(values.max())
    if values.size > PERCENTILE_VALUES:  # every n-th value: percentiles cost O(n) copies
        values = values[:: values.size // PERCENTILE_VALUES | 1]
    lo, hi = (float(v) for v in np.percentile(values.astype(np.float64), [0.1, 99.9]))
    if hi <= lo:
        hi = vmax
    if np.dtype(dtype).kind in "uib":
        lo, hi = math.floor(lo), math.ceil(hi)
    if hi <= lo:  # constant data
        hi = lo + 1.0
    return lo, hi, vmin, max(vmax, hi)


def _window(limits: Sequence[float] | None, dtype: np.dtype,
            data: Sequence[float] | None = None) -> dict:
    """An omero ``window``: start/end the layer's contrast limits, else those picked from the
    data (``data``: a :func:`sample_window`), else the dtype's range (floats: 0..1); min/max
    the dtype's range for integers, the data's (and the limits') for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    elif dtype.kind == "b":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(data[2]), float(data[3])) if data is not None else (0.0, 1.0)
    if limits is not None:
        start, end = float(limits[0]), float(limits[1])
    elif data is not None:
        start, end = float(data[0]), float(data[1])
    else:
        start, end = lo, hi
    w = {"start": start, "end": end, "min": min(lo, start), "max": max(hi, end)}
    return {k: (v if math.isfinite(v) else 0.0) for k, v in w.items()}


def omero_metadata(channels: Sequence[Mapping[str, Any]], dtype: np.dtype,
                   windows: Sequence[Any] | None = None) -> dict:
    """``omero`` with one entry per channel: ``label``, ``color``, ``window``, ``active``.

    Each channel mapping may hold ``name``, ``colormap``, ``contrast_limits``, ``visible``
    (napari layer settings); ``windows`` (one :func:`sample_window` or None per channel)
    gives the window of channels without contrast limits.
    """
    out = []
    for i, ch in enumerate(channels):
        limits = ch.get("contrast_limits")
        data = windows[i] if windows is not None and i < len(windows) else None
        out.append({
            "label": str(ch.get("name", "")),
            "color": colormap_hex(ch.get("colormap")),
            "window": _window(limits, dtype, data),
            "active": bool(ch.get("visible", True)),
        })
    return {"channels": out, "rdefs": {"model": "color"}}


def colormap_spec(colormap: Any) -> dict | None:
    """A napari colormap that one OMERO colour cannot hold (anything but black to one colour,
    linearly) as JSON: ``name``, ``colors`` (RGBA 0..1), ``controls``, ``interpolation``;
    None for a single-colour ramp (the omero colour keeps it) or no colormap."""
    if colormap is None:
        return None
    if isinstance(colormap, str) and colormap.lower() in _NAMED_TOPS:
        return None
    try:
        from napari.utils.colormaps import ensure_colormap

        cmap = ensure_colormap(dict(colormap) if isinstance(colormap, Mapping) else colormap)
    except Exception:
        return None
    colors = np.asarray(cmap.colors, dtype=float)
    controls = np.asarray(cmap.controls, dtype=float)
    interpolation = str(getattr(cmap.interpolation, "value", cmap.interpolation))
    ramp = (len(colors) == 2 and np.allclose(colors[0], [0, 0, 0, 1])
            and np.isclose(colors[1][3], 1.0) and np.allclose(controls, [0, 1])
            and interpolation == "linear")
    if ramp:
        return None
    return {"name": str(cmap.name),
            "colors": [[round(float(v), 6) for v in c] for c in colors],
            "controls": [round(float(v), 6) for v in controls],
            "interpolation": interpolation}


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
    for value, (_, row) in zip(label_values, table.iterrows(), strict=True):
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
    for v, c in zip(values, np.asarray(rgba, dtype=float), strict=True):
        colors.append({
            "label-value": int(v),
            "rgba": [int(round(min(max(x, 0.0), 1.0) * 255)) for x in c[:4]],
        })
    out: dict[str, Any] = {"colors": colors, "source": {"image": source}}
    if properties:
        out["properties"] = properties
    return out
