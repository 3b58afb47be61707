"""The ``omero`` rendering settings of an image as napari per-channel layer keywords."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Colours that napari has a named colormap for (black to that colour).
_NAMED = {
    "FF0000": "red",
    "00FF00": "green",
    "0000FF": "blue",
    "FF00FF": "magenta",
    "00FFFF": "cyan",
    "FFFF00": "yellow",
    "FFFFFF": "gray",
}


def colormap_for(color: Any) -> str | dict | None:
    """A napari colormap (a name where napari has one, else black-to-colour) for ``RRGGBB``."""
    if not isinstance(color, str):
        return None
    hexa = color.strip().lstrip("#").upper()
    if len(hexa) == 8:  # RRGGBBAA: napari colormaps are opaque
        hexa = hexa[:6]
    if len(hexa) != 6 or any(ch not in "0123456789ABCDEF" for ch in hexa):
        return None
    if hexa in _NAMED:
        return _NAMED[hexa]
    rgb = [int(hexa[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return {"colors": [[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], "name": f"#{hexa}"}


def dtype_limits(dtype: np.dtype) -> list[float] | None:
    """The full range of an integer type (what napari would pick without looking at data)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return [float(info.min), float(info.max)]
    if dtype.kind == "b":
        return [0.0, 1.0]
    return None


def _window(window: Any) -> list[float] | None:
    """``start``/``end`` of an omero window, else its ``min``/``max``; None if neither is a
    usable (finite, increasing) range."""
    if not isinstance(window, Mapping):
        return None
    for lo_key, hi_key in (("start", "end"), ("min", "max")):
        try:
            lo, hi = float(window[lo_key]), float(window[hi_key])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite([lo, hi]).all() and hi > lo:
            return [lo, hi]
    return None


def channel_settings(
    omero: Mapping[str, Any] | None, n_channels: int, dtype: np.dtype
) -> dict[str, list]:
    """Per-channel ``name``, ``colormap``, ``contrast_limits`` and ``visible`` lists.

    Keys without usable omero values are left out (napari then picks its defaults), except
    ``contrast_limits``, which falls back to the dtype range so napari never scans lazy data.
    """
    channels: Sequence[Any] = []
    greyscale = False
    if isinstance(omero, Mapping):
        channels = omero.get("channels") or []
        greyscale = (omero.get("rdefs") or {}).get("model") == "greyscale"
    channels = [c if isinstance(c, Mapping) else {} for c in channels]
    if len(channels) != n_channels:
        channels = [{}] * n_channels
    out: dict[str, list] = {}
    names = [c.get("label") for c in channels]
    if all(isinstance(n, str) and n for n in names):
        out["name"] = names
    cmaps = ["gray" if greyscale else colormap_for(c.get("color")) for c in channels]
    if all(cm is not None for cm in cmaps):
        out["colormap"] = cmaps
    fallback = dtype_limits(dtype)
    limits = [_window(c.get("window")) or fallback for c in channels]
    if all(lim is not None for lim in limits):
        out["contrast_limits"] = limits
    out["visible"] = [bool(c.get("active", True)) for c in channels]
    return out


#: the attribute (beside ``ome``) where napari-ozx keeps what OME-Zarr has no word for
NAPARI_KEY = "napari-ozx"


def napari_attrs(attributes: Any) -> dict:
    """The ``napari-ozx`` attributes of a group (``{}`` when absent or malformed)."""
    try:
        value = dict(attributes).get(NAPARI_KEY)
    except Exception:
        return {}
    return dict(value) if isinstance(value, Mapping) else {}


def restored_colormap(spec: Any) -> str | dict | None:
    """A colormap kept by napari-ozx (``name``, ``colors``, ``controls``, ``interpolation``) as
    napari takes it: napari's own name when its colormap of that name has these colours."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("colors"), list):
        return None
    try:
        colors = np.asarray(spec["colors"], dtype=float)
        controls = spec.get("controls")
        if colors.ndim != 2 or colors.shape[1] not in (3, 4) or len(colors) < 2:
            return None
        if colors.shape[1] == 3:
            colors = np.column_stack([colors, np.ones(len(colors))])
        controls = (np.asarray(controls, dtype=float) if controls is not None
                    else np.linspace(0, 1, len(colors)))
    except (TypeError, ValueError):
        return None
    name = str(spec.get("name") or "custom")
    interpolation = spec.get("interpolation", "linear")
    if interpolation not in ("linear", "zero"):
        interpolation = "linear"
    try:
        from napari.utils.colormaps import AVAILABLE_COLORMAPS

        known = AVAILABLE_COLORMAPS.get(name)
    except Exception:
        known = None
    if known is not None and np.asarray(known.colors).shape == colors.shape and np.allclose(
            known.colors, colors, atol=1e-5) and np.allclose(known.controls, controls,
                                                             atol=1e-5):
        return name
    if known is not None:
        name = f"{name} (saved)"
    return {"name": name, "colors": colors.tolist(), "controls": controls.tolist(),
            "interpolation": interpolation}


def apply_napari_attrs(settings: dict[str, list], extra: Mapping[str, Any], n: int) -> None:
    """Channel ``settings`` with the colormaps kept under ``napari-ozx`` put back."""
    specs = extra.get("colormaps")
    if not isinstance(specs, list) or len(specs) != n:
        return
    cmaps = list(settings.get("colormap") or ["gray"] * n)
    for i, spec in enumerate(specs):
        restored = restored_colormap(spec)
        if restored is not None:
            cmaps[i] = restored
    settings["colormap"] = cmaps
