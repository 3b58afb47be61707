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
