"""What napari (or a script) gives the save -> :class:`LayerIn`, the save's own input.

A napari layer, an npe2 ``LayerData`` tuple, or the arrays given to
:func:`~napari_ozx.save.api.write_ozx` become :class:`LayerIn` items: a kind (image or labels),
a name, the levels as dask arrays (level 0 first) and napari's settings.  Here too are the
checks on one layer alone, made before anything is written: the kind, and a dtype the save
can store (:func:`check_dtype`); and the split of an RGB(A) layer into one channel per colour
(:func:`split_rgb`).

It does not group layers into an image and its labels, choose axes, layouts or pyramids
(:mod:`.plan`), nor compute any pixel: the levels stay lazy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from ..errors import OzxError
from ..read import provenance

__all__ = ["LayerIn", "from_layer", "from_layer_data", "as_layer_in", "levels_of", "is_layer",
           "arrays_as_layers", "axis_meta", "check_dtype", "split_rgb"]


@dataclass
class LayerIn:
    """One napari layer (or array) to save: its levels and napari settings."""

    kind: str  # "image" or "labels"
    name: str
    levels: list[da.Array]  # level 0 first
    meta: dict = field(default_factory=dict)


def levels_of(data: Any, multiscale: bool | None) -> list[da.Array]:
    """The levels of layer data, level 0 first.

    A pyramid is any sequence of arrays: a list or tuple, or napari's ``MultiScaleData`` (a
    ``Sequence`` but not a ``list``, and itself array-like: it has a ``shape``, so the test is
    "a sequence whose items are arrays", not "has no shape").  ``multiscale=False`` says the
    data is one array even if it is a sequence (a nested list of pixels).
    """
    if multiscale is not False and _is_level_sequence(data):
        levels = list(data)
    else:
        levels = [data]
    return [_as_dask(a) for a in levels]


def _is_level_sequence(data: Any) -> bool:
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        return False
    if isinstance(data, (list, tuple)) and not data:
        return False
    first = data[0]
    return hasattr(first, "shape") and hasattr(first, "dtype") and len(first.shape) > 0


def _as_dask(a: Any) -> da.Array:
    if isinstance(a, da.Array):
        return a
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        a = np.asarray(a)
    return da.from_array(a, chunks=_source_chunks(a.shape, a.dtype), asarray=False,
                         meta=np.empty((0,) * len(a.shape), dtype=a.dtype))


#: the size of the dask chunks an in-memory or zarr array is wrapped in
SOURCE_CHUNK_BYTES = 16 << 20


def _source_chunks(shape: Sequence[int], dtype: Any) -> tuple[int, ...]:
    """Chunks for wrapping an in-memory or zarr array: whole rows of planes, ~16 MB."""
    itemsize = np.dtype(dtype).itemsize
    chunks = list(shape)
    for i in range(len(shape)):
        if math.prod(chunks) * itemsize <= SOURCE_CHUNK_BYTES:
            break
        rest = math.prod(chunks[i + 1:]) * itemsize
        chunks[i] = max(1, min(shape[i], SOURCE_CHUNK_BYTES // max(rest, 1)))
    return tuple(max(1, c) for c in chunks)


def from_layer_data(data: Any, meta: Mapping[str, Any] | None, layer_type: str) -> LayerIn:
    """A napari ``LayerData`` tuple (what npe2 writers get) as a :class:`LayerIn`."""
    meta = dict(meta or {})
    kind = layer_type.lower()
    if kind not in ("image", "labels"):
        raise OzxError(f"napari-ozx saves image and labels layers, not {layer_type!r} "
                       f"(layer {meta.get('name')!r})")
    loaded = provenance.loaded_source(data) if kind == "labels" else None
    # a label image loaded for painting and still as loaded: its stored pyramid, to be copied
    levels = list(loaded) if loaded is not None else levels_of(data, meta.get("multiscale"))
    return LayerIn(kind, str(meta.get("name") or kind), levels, meta)


def from_layer(layer: Any) -> LayerIn:
    """A napari ``Layer`` as a :class:`LayerIn`."""
    data, meta, kind = layer.as_layer_data_tuple()
    return from_layer_data(data, meta, kind)


def as_layer_in(layer: Any) -> LayerIn:
    """A ``Layer``, a ``LayerData`` tuple or a :class:`LayerIn` as a :class:`LayerIn`."""
    if isinstance(layer, LayerIn):
        return layer
    if isinstance(layer, tuple):
        return from_layer_data(*layer)
    return from_layer(layer)


def is_layer(x: Any) -> bool:
    """Whether ``x`` is a layer (a ``Layer``, a ``LayerData`` tuple or a :class:`LayerIn`)
    rather than an array."""
    return hasattr(x, "as_layer_data_tuple") or isinstance(x, LayerIn) or (
        isinstance(x, tuple) and len(x) == 3 and isinstance(x[2], str))


def arrays_as_layers(image: Any, *, axes: str | Sequence[str] | None, name: str | None,
                     scale: Sequence[float] | None, translate: Sequence[float] | None,
                     units: str | Sequence[str] | None, channel_names: Sequence[str] | None,
                     colormaps: Any, contrast_limits: Any) -> list[LayerIn]:
    """The image arrays given to :func:`~napari_ozx.save.api.write_ozx` as image layers, one
    per channel of a ``c`` axis."""
    levels = levels_of(image, None)
    ndim = levels[0].ndim
    if axes is not None and len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} names for {ndim} dimensions")
    names = list(axes) if axes is not None else None
    c = names.index("c") if names is not None and "c" in names else None
    spatial_names = [n for n in names if n != "c"] if names is not None else None
    meta = {"name": name or "image", "axis_labels": spatial_names,
            **axis_meta(scale, translate, units)}
    if c is None:
        if channel_names:
            meta["name"] = channel_names[0]
        if colormaps:
            meta["colormap"] = colormaps[0] if not isinstance(colormaps, str) else colormaps
        if contrast_limits is not None:
            meta["contrast_limits"] = contrast_limits[0] if np.ndim(contrast_limits) == 2 \
                else contrast_limits
        return [LayerIn("image", meta["name"], levels, meta)]
    n = int(levels[0].shape[c])
    out = []
    for i in range(n):
        m = dict(meta)
        m["name"] = channel_names[i] if channel_names else f"{meta['name']} [{i}]"
        if colormaps:
            m["colormap"] = colormaps[i]
        if contrast_limits is not None:
            m["contrast_limits"] = contrast_limits[i]
        idx = (slice(None),) * c + (i,)
        out.append(LayerIn("image", m["name"], [lvl[idx] for lvl in levels], m))
    return out


def axis_meta(scale: Sequence[float] | None, translate: Sequence[float] | None,
              units: str | Sequence[str] | None) -> dict[str, Any]:
    """Layer metadata for the per-axis options given to
    :func:`~napari_ozx.save.api.write_ozx` (only those given)."""
    meta: dict[str, Any] = {}
    if scale is not None:
        meta["scale"] = [float(v) for v in scale]
    if translate is not None:
        meta["translate"] = [float(v) for v in translate]
    if units is not None:
        meta["units"] = units
    return meta


def split_rgb(layer: LayerIn) -> list[LayerIn]:
    """An RGB(A) layer as one layer per colour channel."""
    n = int(layer.levels[0].shape[-1])
    names = ["red", "green", "blue", "alpha"][:n]
    out = []
    for i, colour in enumerate(names):
        meta = dict(layer.meta, rgb=False, colormap=colour if colour != "alpha" else "gray",
                    contrast_limits=layer.meta.get("contrast_limits"))
        if colour == "alpha":  # other viewers would add it as a grey channel: hidden there
            meta["visible"] = False
        out.append(LayerIn("image", f"{layer.name} {colour}", [lvl[..., i] for lvl in layer.levels],
                           meta))
    return out


# ------------------------------------------------- what survives a save (issue 12)

#: numpy kinds our shard encoder writes, and napari shows
_SAVED_KINDS = "buif"
_NO_SAVE = {
    "c": "napari cannot show complex numbers and OMERO rendering settings have no meaning "
         "for them; save the real and imaginary parts (or the magnitude) as channels",
    "M": "OME-Zarr images hold numbers; save it as integers (e.g. .astype('int64'))",
    "m": "OME-Zarr images hold numbers; save it as integers (e.g. .astype('int64'))",
}


def check_dtype(layer: LayerIn) -> None:
    """Refuse, before anything is written, a dtype this package does not save."""
    dtype = np.dtype(layer.levels[0].dtype)
    if dtype.kind in _SAVED_KINDS and dtype.itemsize <= 8:
        return
    why = _NO_SAVE.get(dtype.kind, "OME-Zarr images hold booleans, integers or floats "
                                   "(bool, int8..uint64, float16/32/64)")
    raise OzxError(f"{layer.kind} layer {layer.name!r} has dtype {dtype}, which napari-ozx "
                   f"does not save: {why}")
