"""Save images and labels (arrays or napari layers) as one OME-Zarr 0.5 ``.ozx`` archive.

The one code path behind :func:`write_ozx` (scripts), the npe2 writer and the export widget.

Data flow: layers -> :class:`Plan` (grouping, axes, storage layout; zarr makes each array's
``zarr.json``, :mod:`.ome.write` the OME metadata) -> one task per slab of a shard
(:mod:`.shards`) that computes the slab's pixels, encodes its inner chunks (:mod:`.sharding`,
the bytes zarr's sharding codec writes) and downsamples them for the next pyramid level -> the
encoded chunks go back to the caller's process, which appends them to the archive as they come
(the shard being written is an open entry of :class:`~.zip.writer.OzxWriter`), and the
downsampled piece to the inner chunks of the next level it belongs to (:mod:`.cascade`),
which become a task once they are complete; a shard of those levels waits, encoded, in a spill
file beside the archive until its last chunk is in (:class:`~.shards.ShardCollector`).

So the work runs on whatever dask scheduler is active (threads, processes, a
``dask.distributed`` cluster) while the archive is written by one process; at most a window of
tasks is in flight, which bounds memory whatever the image size (a slab per task, plus a few
partly filled inner chunks per pyramid level).  Every source pixel is computed once and no level is
read back: pyramid level ``k+1`` is made from level ``k``'s pixels as they are written.  Only
where the inner chunks do not hold whole downsampling windows is level ``k`` read back from the
archive being written (by path, so workers on this machine can do it); with
``pyramid_from="source"`` the levels are chained lazily from the source instead.

Nothing reaches the destination before the archive is complete: a failure, an exception in
the data, or a cancel leaves the file that was there (if any) as it was.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np

from . import cascade as C
from ..read import provenance
from . import rawcopy
from . import pyramid as P
from ..errors import OzxError
from ..ome import write as M
from .shards import (ShardCollector, WriteCancelled, Work, encode_task, n_shards, read_shard,
                     slab_chunks, slab_regions, stream)
from .options import CODECS, SHARD_BYTES, StorageOptions, default_chunks, default_shards

__all__ = ["write_ozx", "write_layers", "WriteCancelled", "StorageOptions", "Plan", "plan_layers",
           "default_chunks", "default_shards", "CODECS", "SHARD_BYTES"]

# ----------------------------------------------------------------------------- input layers


@dataclass
class LayerIn:
    """One napari layer (or array) to save: its levels and napari settings."""

    kind: str  # "image" or "labels"
    name: str
    levels: list  # level 0 first
    meta: dict = field(default_factory=dict)


def _levels_of(data, multiscale: bool | None) -> list:
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


def _is_level_sequence(data) -> bool:
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        return False
    if isinstance(data, (list, tuple)) and not data:
        return False
    first = data[0]
    return hasattr(first, "shape") and hasattr(first, "dtype") and len(first.shape) > 0


def _as_dask(a) -> da.Array:
    if isinstance(a, da.Array):
        return a
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        a = np.asarray(a)
    return da.from_array(a, chunks=_source_chunks(a.shape, a.dtype), asarray=False,
                         meta=np.empty((0,) * len(a.shape), dtype=a.dtype))


def _source_chunks(shape, dtype) -> tuple:
    """Chunks for wrapping an in-memory or zarr array: whole rows of planes, ~16 MB."""
    itemsize = np.dtype(dtype).itemsize
    chunks = list(shape)
    for i in range(len(shape)):
        if math.prod(chunks) * itemsize <= 16 << 20:
            break
        rest = math.prod(chunks[i + 1:]) * itemsize
        chunks[i] = max(1, min(shape[i], (16 << 20) // max(rest, 1)))
    return tuple(max(1, c) for c in chunks)


def from_layer_data(data, meta: Mapping[str, Any] | None, layer_type: str) -> LayerIn:
    """A napari ``LayerData`` tuple (what npe2 writers get) as a :class:`LayerIn`."""
    meta = dict(meta or {})
    kind = layer_type.lower()
    if kind not in ("image", "labels"):
        raise OzxError(f"napari-ozx saves image and labels layers, not {layer_type!r} "
                       f"(layer {meta.get('name')!r})")
    loaded = provenance.loaded_source(data) if kind == "labels" else None
    # a label image loaded for painting and still as loaded: its stored pyramid, to be copied
    levels = list(loaded) if loaded is not None else _levels_of(data, meta.get("multiscale"))
    return LayerIn(kind, str(meta.get("name") or kind), levels, meta)


def from_layer(layer) -> LayerIn:
    data, meta, kind = layer.as_layer_data_tuple()
    return from_layer_data(data, meta, kind)


# ----------------------------------------------------------------------------- the plan


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
            tuple(x.shape) != tuple(y.shape) for x, y in zip(ref.levels, other.levels)):
        fail("pyramid", [tuple(x.shape) for x in ref.levels],
             [tuple(y.shape) for y in other.levels])
    if bool(ref.meta.get("rgb")) or bool(other.meta.get("rgb")):
        fail("RGB setting", bool(ref.meta.get("rgb")), bool(other.meta.get("rgb")))


def _split_rgb(layer: LayerIn) -> list[LayerIn]:
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


def _given_factors(levels: list) -> list[tuple[float, ...]]:
    """Cumulative downsampling factors of levels that came with the data, from their shapes
    (the nearest integer when it reproduces the shape by ceil or floor)."""
    s0 = levels[0].shape
    out = []
    for lvl in levels:
        f = []
        for a, b in zip(s0, lvl.shape):
            ratio = a / max(b, 1)
            k = max(1, round(ratio))
            f.append(float(k) if b in (math.ceil(a / k), a // k) else ratio)
        out.append(tuple(f))
    return out


def _cumulative(steps: list[tuple[int, ...]], ndim: int) -> list[tuple[float, ...]]:
    acc = [1.0] * ndim
    out = [tuple(acc)]
    for s in steps:
        acc = [a * f for a, f in zip(acc, s)]
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


def _pyramid(levels: list, types, scale, chunks, *, pyramid_levels) -> tuple[list, list, int]:
    """(levels, steps, given): a multiscale input is kept as it is; a single level gets
    ``steps`` to compute later."""
    if len(levels) > 1:
        return levels, [], len(levels)
    if pyramid_levels is None and not P.needs_pyramid(levels[0].shape, types,
                                                      levels[0].dtype.itemsize):
        return levels, [], 1  # small enough for napari as it is: a plain layer on reopen
    if pyramid_levels == "full":
        pyramid_levels = None  # down to one chunk, whatever the size
    steps = P.plan_factors(levels[0].shape, chunks, types, scale, levels=pyramid_levels)
    return levels, steps, 1


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
    if image_method not in P.METHODS:
        raise ValueError(f"image_method must be one of {P.METHODS}, not {image_method!r}")
    if labels_method not in P.LABEL_METHODS:
        raise ValueError(f"labels_method must be one of {P.LABEL_METHODS} (a label value "
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
        expanded.extend(_split_rgb(layer) if layer.meta.get("rgb") else [layer])
    if any(layer.meta.get("rgb") for layer in images) and len(images) > 1:
        _check_joinable(images[0], images[1])  # raises: RGB layers are saved alone
    ref = expanded[0]
    for other in expanded[1:]:
        _check_joinable(ref, other)
    ndim = ref.levels[0].ndim
    units = _units(ref.meta, ndim)
    spatial = M.infer_axis_names(ndim, ref.meta.get("axis_labels"), units)
    scale, translate = _spatial_geometry(ref, ndim)
    multichannel = len(expanded) > 1
    if multichannel:
        # c after a time axis, or after an unknown leading one (then saved as time)
        c = 1 if M.axes_metadata(spatial, units)[0].get("type") in ("time", None) else 0
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
    axes = M.axes_metadata(names, units)
    types = [a.get("type") for a in axes]
    chunks0, _ = storage.layout(levels[0].shape, types, levels[0].dtype)
    levels, steps, given = _pyramid(levels, _planned_types(types, names, units), scale,
                                    chunks0, pyramid_levels=pyramid_levels)
    factors = _given_factors(levels) if given > 1 else _cumulative(steps, len(names))
    channels = [{"name": x.name, "colormap": x.meta.get("colormap", "gray"),
                 "contrast_limits": x.meta.get("contrast_limits"),
                 "visible": x.meta.get("visible", True)} for x in expanded]
    for layer in expanded:
        _check_dtype(layer)
    for lab in labels:
        _check_dtype(lab)
    title = name or (ref.name if not multichannel else os.path.commonprefix(
        [x.name for x in expanded]).strip(" _-[") or default_name or ref.name)
    image = ArrayPlan(
        path="", name=str(title), kind="image", axes=axes, levels=levels, factors=factors,
        steps=steps, given=given, scale=tuple(scale), translate=tuple(translate),
        method=image_method,
        attrs={"omero": M.omero_metadata(channels, levels[0].dtype)},
        layer=ref, channels=channels, napari=_napari_attrs(images, expanded),
    )
    taken: set[str] = set()
    label_plans = []
    spatial_types = [t for t in types if t != "channel"]
    image_steps = [tuple(f for f, t in zip(s, types) if t != "channel") for s in steps]
    for lab in labels:
        lv = list(lab.levels)
        lnd = lv[0].ndim
        lnames = (spatial if lnd == len(spatial) and not _meaningful(lab.meta, lnd)
                  else M.infer_axis_names(lnd, lab.meta.get("axis_labels")))
        laxes = M.axes_metadata(lnames, _units(lab.meta, lnd))
        ltypes = [a.get("type") for a in laxes]
        lscale, ltranslate = _spatial_geometry(lab, lnd)
        lchunks, _ = storage.layout(lv[0].shape, ltypes, lv[0].dtype)
        if len(lv) > 1:
            lsteps, lgiven = [], len(lv)
        elif (lnd == len(spatial_types) and given == 1
              and tuple(lv[0].shape) == tuple(s for s, t in zip(levels[0].shape, types)
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
    return labels is not None and M.infer_axis_names(ndim, labels) == [str(x) for x in labels]


class _Job:
    def __init__(self, path, plan: Plan, storage: StorageOptions, *, progress, cancel,
                 pyramid_from: str):
        from .store import OzxWriteStore

        self.path = os.fspath(path)
        self.plan = plan
        self.storage = storage
        self.progress = progress
        self.cancel = cancel
        self.pyramid_from = pyramid_from
        self.done = 0
        self._copier: rawcopy.Copier | None = None
        self._metadata: dict[tuple[str, int], bytes] = {}  # see _array_metadata
        self.layouts: dict[tuple[str, int], tuple] = {}
        # levels whose stored entries are copied from the archive they were read from
        self.copies: dict[tuple[str, int], rawcopy.Copy] = {}
        self.total = 0
        for ap in plan.arrays():
            for k in range(len(ap.levels) + len(ap.steps)):
                shp = self._level_shape(ap, k)
                chunks, shards = storage.layout(shp, ap.types, ap.levels[0].dtype)
                self.layouts[(ap.path, k)] = (shp, chunks, shards)
                copy = self._plan_copy(ap, k)
                if copy is not None:
                    self.copies[(ap.path, k)] = copy
                    self.total += len(copy.entries)
                else:
                    self.total += n_shards(shp, shards)
        self.values: dict[str, np.ndarray] = {}
        # encoded shards that wait for their last chunk wait on disk, beside the archive
        self.spill_dir = os.path.dirname(os.path.abspath(self.path))
        # last: the temporary file beside the destination exists only while run() runs
        self.store = OzxWriteStore(self.path)
        self.writer = self.store.writer

    def _plan_copy(self, ap: ArrayPlan, k: int) -> rawcopy.Copy | None:
        """A copy of level ``k`` if it is unchanged data read from an archive and may keep its
        stored layout (see :mod:`.rawcopy`).  Levels of a pyramid still to be computed are
        encoded: the cascade needs the pixels of the level above them."""
        if ap.steps or k >= len(ap.levels) or not self.storage.copy_unchanged:
            return None
        if provenance.source_of(ap.levels[k]) is None:
            return None  # not read from an archive: no layout to compare
        ours = None if self.storage.keep_layout else self._array_metadata(ap, k)
        return rawcopy.plan_copy(ap.levels[k], [a["name"] for a in ap.axes], ours)

    @staticmethod
    def _level_shape(ap: ArrayPlan, k: int) -> tuple[int, ...]:
        if k < len(ap.levels):
            return tuple(int(s) for s in ap.levels[k].shape)
        shape = [int(s) for s in ap.levels[-1].shape]
        for step in ap.steps[: k - len(ap.levels) + 1]:
            shape = [math.ceil(s / f) for s, f in zip(shape, step)]
        return tuple(shape)

    def _tick(self, n: int = 1) -> None:
        if self._copier is not None:
            n += self._copier.collect()
        if not n:
            return
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def run(self) -> str:
        import zarr

        try:
            root = zarr.open_group(self.store, mode="w", zarr_format=3)
            if self.plan.labels:
                labels = root.create_group("labels")
                for ap in self.plan.labels:
                    labels.create_group(ap.path.split("/", 1)[1])
            arrays = {ap.path: [self._create_array(ap, k)
                                for k in range(len(ap.levels) + len(ap.steps))]
                      for ap in self.plan.arrays()}
            # Stored entries to copy take their places first and are copied by a thread while
            # the rest is encoded (the copy is the kernel's work, the encoding the cores').
            copier = rawcopy.Copier(self.writer, [(copy, arrays[path][k][0]) for (path, k), copy
                                                  in self.copies.items()],
                                    tick=self._tick, cancelled=self._cancelled)
            self._copier = copier
            with copier:
                for ap in self.plan.arrays():
                    self._write_multiscale(ap, arrays[ap.path])
            self._write_attributes(root)
            if self.cancel is not None and self.cancel.is_set():
                raise WriteCancelled("cancelled")
            self.store.close()
        except WriteCancelled:
            self.store.abort()
            raise WriteCancelled("cancelled; the destination was left as it was",
                                 archive=self.path) from None
        except BaseException:
            self.store.abort()
            raise
        return self.path

    def _array_metadata(self, ap: ArrayPlan, k: int) -> bytes:
        """The ``zarr.json`` of level ``k`` as the storage options lay it out (made by zarr,
        once: the copy plan compares it and the archive gets it)."""
        made = self._metadata.get((ap.path, k))
        if made is None:
            made = self._metadata[(ap.path, k)] = self._make_array_metadata(ap, k)
        return made

    def _make_array_metadata(self, ap: ArrayPlan, k: int) -> bytes:
        import zarr
        from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
        from zarr.core.buffer import default_buffer_prototype

        shape, chunks, shards = self.layouts[(ap.path, k)]
        index = [BytesCodec(), Crc32cCodec()] if self.storage.index_crc32c else [BytesCodec()]
        arr = zarr.create_array(
            zarr.storage.MemoryStore(), shape=shape, dtype=ap.levels[0].dtype, chunks=shards,
            serializer=ShardingCodec(chunk_shape=chunks, codecs=self.storage.codecs(),
                                     index_codecs=index),
            compressors=None, filters=None, fill_value=0,
            dimension_names=[a["name"] for a in ap.axes],
        )
        return arr.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()

    def _create_array(self, ap: ArrayPlan, k: int):
        shape, chunks, shards = self.layouts[(ap.path, k)]
        name = f"{ap.path}/{k}" if ap.path else str(k)
        copy = self.copies.get((ap.path, k))
        meta = copy.metadata if copy is not None else self._array_metadata(ap, k)
        self.writer.set_metadata(f"{name}/zarr.json", meta)
        return name, meta, shape, shards

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _copied_label_values(self, ap: ArrayPlan, copy: rawcopy.Copy) -> None:
        values = rawcopy.source_label_values(copy.source)
        if values is None:  # the source lists none: find them (a decode, once)
            values = np.unique(np.asarray(ap.levels[0]))
        self.values[ap.path] = values

    def _write_multiscale(self, ap: ArrayPlan, arrays: list) -> None:
        n_levels = len(ap.levels) + len(ap.steps)
        if not ap.steps and any((ap.path, k) in self.copies for k in range(n_levels)):
            for k in range(n_levels):
                copy = self.copies.get((ap.path, k))
                if copy is None:
                    self._write_level(ap, arrays, k, ap.levels[k])
                elif ap.kind == "labels" and k == 0:  # the copy itself is the Copier's
                    self._copied_label_values(ap, copy)
            return
        chunk_grids = [C.Grid(self.layouts[(ap.path, j)][0], self.layouts[(ap.path, j)][1])
                       for j in range(n_levels)]
        if ap.steps and self.pyramid_from == "written" and C.aligned(chunk_grids, ap.steps):
            for k in range(len(ap.levels) - 1):
                self._write_level(ap, arrays, k, ap.levels[k])
            self._write_level(ap, arrays, len(ap.levels) - 1, ap.levels[-1], cascade=True)
            return
        # Computed levels one after another: from the source (pyramid_from="source"), or
        # from the level before as written (read back) when chunks and windows do not align.
        source, previous = ap.levels[0], None
        for k in range(n_levels):
            if k < len(ap.levels):
                level = ap.levels[k]
            elif self.pyramid_from == "source":
                level = source = P.downsample(source, ap.steps[k - len(ap.levels)], ap.method)
            else:
                level = P.downsample(previous, ap.steps[k - len(ap.levels)], ap.method)
            self._write_level(ap, arrays, k, level)
            if k + 1 < n_levels and self.pyramid_from != "source":
                previous = self._read_back(*arrays[k], level.dtype)

    def _write_level(self, ap: ArrayPlan, arrays: list, k: int, level: da.Array, *,
                     cascade: bool = False) -> None:
        """Write level ``k``; with ``cascade``, every level below it too, each built from the
        inner chunks of the one above as they are encoded (:mod:`.cascade`)."""
        from .encoder import ShardEncoder

        name, meta, shape, shards = arrays[k]
        if tuple(level.shape) != tuple(shape):
            raise OzxError(f"level {name} has shape {tuple(level.shape)}, expected {shape}",
                           archive=self.path, entry=f"{name}/zarr.json")
        below = arrays[k:] if cascade else arrays[k:k + 1]
        steps = ap.steps[k - len(ap.levels) + 1:] if cascade else []
        chunks = [self.layouts[(ap.path, j)][1] for j in range(k, k + len(below))]
        encoders = [ShardEncoder.from_metadata(a[1]) for a in below]
        if any(e is None for e in encoders):  # _create_array makes only layouts it covers
            raise OzxError(f"no shard encoder for the layout of {name}", archive=self.path)
        grids = [C.Grid(a[2], a[3]) for a in below]
        # the pieces of a level are gathered into whole inner chunks of the next
        assemblies = [C.Assembly(C.Grid(g.shape, c), level.dtype)
                      for g, c in zip(grids[1:], chunks[1:])]
        unique = ap.kind == "labels" and k == 0

        def step_of(depth: int):
            """The step from level k + depth to the next one (None: the last level)."""
            return steps[depth] if depth < len(steps) else None

        # Level k's shards, as slabs computed one after another (see shards.slab_chunks),
        # the shards in visit order (the archive side: shards.ShardCollector)
        slab_grid = slab_chunks(shape, shards, chunks[0], step_of(0), level.chunks)
        blocks = level.rechunk(slab_grid).to_delayed(optimize_graph=True)
        spots = grids[0].regions
        order = C.visit_order(grids, steps) if steps else range(len(spots))
        heads = [grids[0].index_at([a for a, _ in spots[i]]) for i in order]
        shards_out = ShardCollector(self.writer, [a[0] for a in below], encoders, heads,
                                    self.spill_dir, self._tick)

        def work(depth: int, data: list, boxes: list) -> Work:
            return Work(encode_task, data, (below[depth][1], boxes, unique and depth == 0,
                                            step_of(depth), ap.method), tag=depth)

        def on_result(w: Work, result) -> list[Work]:
            depth = w.tag
            encoded, values, pieces = result
            shards_out.add(depth, encoded)
            if values is not None:
                prev = self.values.get(ap.path)
                self.values[ap.path] = values if prev is None else np.union1d(prev, values)
            new = []
            for box, piece in pieces:
                done = assemblies[depth].add(box, piece)
                if done:
                    new.append(work(depth + 1, [px for _, px in done], [r for r, _ in done]))
            return new

        def level_k():
            for i in order:
                for ix, sub in slab_regions(slab_grid, spots[i]):
                    yield work(0, [blocks[ix]], [sub])

        with shards_out:
            stream(level_k(), on_result, self.cancel)
        left = shards_out.unfinished + [a.pending for a in assemblies]
        if any(left):  # every chunk was delivered, so this would be a bug, not bad input
            raise OzxError(f"pyramid of {name} left shards or chunks unfinished: {left}",
                           archive=self.path)

    def _read_back(self, name, meta, shape, shards, dtype) -> da.Array:
        from .encoder import ShardEncoder

        tmp = self.writer.temporary_path
        encoder = ShardEncoder.from_metadata(meta)
        grid = encoder.grid
        spans = {}
        for index in itertools.product(*map(range, grid.counts)):
            key = encoder.key(index)
            spans[key] = self.writer.data_span(f"{name}/{key}")

        def block(block_id=None):
            key = encoder.key(block_id)
            return read_shard(meta, key, tmp, spans.get(key), grid.region(block_id))

        return da.map_blocks(block, chunks=grid.dask_chunks, dtype=dtype,
                             meta=np.empty((0,) * len(shape), dtype=dtype),
                             name="ozx-readback-" + dask.base.tokenize(tmp, name, meta))

    def _write_attributes(self, root) -> None:
        import zarr

        img = self.plan.image
        ome = {"version": M.OME_VERSION}
        ome["multiscales"] = self._multiscales(img)
        windows = _data_windows(self, img)
        if windows is not None:
            img.attrs["omero"] = M.omero_metadata(img.channels, img.levels[0].dtype, windows)
        ome.update(img.attrs)
        root.attrs.update({"ome": ome, **({"napari-ozx": img.napari} if img.napari else {})})
        if not self.plan.labels:
            return
        names = [ap.path.split("/", 1)[1] for ap in self.plan.labels]
        zarr.open_group(self.store, path="labels", mode="r+").attrs.update(
            {"ome": {"version": M.OME_VERSION, "labels": names}})
        for ap in self.plan.labels:
            values = self.values.get(ap.path, np.zeros(0, dtype=np.int64))
            rgba = _label_colours(ap.layer.meta.get("colormap") if ap.layer else None,
                                  values, ap.levels[0].dtype)
            props = M.properties_from_features(
                ap.layer.meta.get("features") if ap.layer else None, values)
            lab = {"version": M.OME_VERSION, "multiscales": self._multiscales(ap),
                   "image-label": M.image_label_metadata(values, rgba, properties=props)}
            zarr.open_group(self.store, path=ap.path, mode="r+").attrs.update({"ome": lab})

    def _multiscales(self, ap: ArrayPlan) -> list[dict]:
        n = len(ap.levels) + len(ap.steps)
        return M.multiscales_metadata(
            name=ap.name, axes=ap.axes, paths=[str(k) for k in range(n)], scale=ap.scale,
            translate=ap.translate, factors=ap.factors,
            method=ap.method if ap.steps else None)


def _label_colours(colormap, values: np.ndarray, dtype) -> np.ndarray:
    """RGBA (0..1) of each label value under a napari labels colormap (the layer's own, or
    napari's default cyclic one)."""
    if len(values) == 0:
        return np.zeros((0, 4))
    cmap = colormap if hasattr(colormap, "map") else None
    if cmap is None and colormap is None:  # napari's default (cheaper than a Labels probe)
        from napari.utils.colormaps import label_colormap

        cmap = label_colormap(49, seed=0.5)
    if cmap is None:
        from napari.layers import Labels

        probe = Labels(np.zeros((1, 1), dtype=dtype))
        if colormap is not None:
            try:
                probe.colormap = colormap
            except Exception:
                pass
        cmap = probe.colormap
    return np.asarray(cmap.map(np.asarray(values)), dtype=float)


# ------------------------------------------------- what survives a save (issue 12)

#: numpy kinds our shard encoder writes, and napari shows
_SAVED_KINDS = "buif"
_NO_SAVE = {
    "c": "napari cannot show complex numbers and OMERO rendering settings have no meaning "
         "for them; save the real and imaginary parts (or the magnitude) as channels",
    "M": "OME-Zarr images hold numbers; save it as integers (e.g. .astype('int64'))",
    "m": "OME-Zarr images hold numbers; save it as integers (e.g. .astype('int64'))",
}


def _planned_types(types: list, names: list, units: list) -> list:
    """Axis types for planning the pyramid: an axis typed space only because OME-Zarr wants
    one there (:func:`.ome.write.forced_space`) is not downsampled."""
    forced = M.forced_space(names, units)
    return [None if i in forced else t for i, t in enumerate(types)]


def _check_dtype(layer: LayerIn) -> None:
    """Refuse, before anything is written, a dtype this package does not save."""
    dtype = np.dtype(layer.levels[0].dtype)
    if dtype.kind in _SAVED_KINDS and dtype.itemsize <= 8:
        return
    why = _NO_SAVE.get(dtype.kind, "OME-Zarr images hold booleans, integers or floats "
                                   "(bool, int8..uint64, float16/32/64)")
    raise OzxError(f"{layer.kind} layer {layer.name!r} has dtype {dtype}, which napari-ozx "
                   f"does not save: {why}")


def _napari_attrs(images: list[LayerIn], expanded: list[LayerIn]) -> dict:
    """The ``napari-ozx`` attributes of the image: what OME-Zarr has no word for (an RGB(A)
    layer's colour axis, colormaps one OMERO colour cannot hold)."""
    out: dict[str, Any] = {}
    if len(images) == 1 and images[0].meta.get("rgb"):
        out["rgb"] = True
    cmaps = [M.colormap_spec(x.meta.get("colormap")) for x in expanded]
    if not out.get("rgb") and any(c is not None for c in cmaps):
        out["colormaps"] = cmaps
    return {"version": 1, **out} if out else {}


#: values looked at (per channel) to pick contrast limits from the data
WINDOW_SAMPLE = 1 << 22


def _data_windows(job, ap: ArrayPlan) -> list | None:
    """Per-channel robust windows (:func:`.ome.write.sample_window`) for the channels saved
    without contrast limits (None when all have them), read back from the archive.

    The sample is the largest level of at most WINDOW_SAMPLE values per channel, whole (the
    whole field of view counts), together with up to WINDOW_SAMPLE / 4 values of level 0
    from the shard at its centre (full resolution: downsampling alone would average the noise and
    the small bright spots away).  Each shard involved is read once."""
    if all(ch.get("contrast_limits") is not None for ch in ap.channels):
        return None
    layouts = [job.layouts[(ap.path, k)] for k in range(len(ap.levels) + len(ap.steps))]
    types = ap.types
    c = types.index("channel") if "channel" in types else None
    per_channel = [math.prod(lay[0]) // (lay[0][c] if c is not None else 1) for lay in layouts]
    k = next((j for j, n in enumerate(per_channel) if n <= WINDOW_SAMPLE), len(layouts) - 1)
    dtype = ap.levels[0].dtype

    def level(j) -> da.Array:
        name = f"{ap.path}/{j}" if ap.path else str(j)
        shape, _, shards = layouts[j]
        return job._read_back(name, job.writer.get(f"{name}/zarr.json"), shape, shards, dtype)

    small, centre = level(k), None
    if k > 0:  # level 0's central shard, all channels (at most one shard: SHARD_BYTES)
        shape0, _, shards0 = layouts[0]
        box = tuple(slice(None) if j == c else slice(n // 2 // s * s, n // 2 // s * s + s)
                    for j, (n, s) in enumerate(zip(shape0, shards0)))
        centre = level(0)[box]
    n_channels = small.shape[c] if c is not None else 1
    out = []
    for i in range(n_channels):
        if ap.channels[i].get("contrast_limits") is not None:
            out.append(None)
            continue
        parts = [_take(small, _sample_index(small.shape, types, c, i))]
        if centre is not None:
            parts.append(_take(centre, _sample_index(centre.shape, types, c, i,
                                                     budget=WINDOW_SAMPLE // 4)))
        out.append(M.sample_window(np.concatenate([p.ravel() for p in parts]), dtype))
    return out


def _take(array: da.Array, index: tuple) -> np.ndarray:
    """Outer indexing (one index per axis, applied axis by axis), computed."""
    for axis, ix in enumerate(index):
        if not (isinstance(ix, slice) and ix == slice(None)):
            array = array[(slice(None),) * axis + (ix,)]
    return np.asarray(array.compute(scheduler="threads"))


def _sample_index(shape, types, c, i, budget: int = WINDOW_SAMPLE) -> tuple:
    """An index of at most about WINDOW_SAMPLE values of channel ``i``: evenly spaced planes
    of the other non-space axes, then the centre of the space axes."""
    index: list = []
    for axis, (n, t) in enumerate(zip(shape, types)):
        if axis == c:
            index.append(np.array([i]))
            continue
        rest = math.prod(s for j, s in enumerate(shape) if j > axis and j != c) or 1
        keep = max(1, min(n, budget // rest))
        if keep >= n:
            index.append(slice(None))
        elif t == "space":
            a = (n - keep) // 2
            index.append(slice(a, a + keep))
        else:
            index.append(np.unique(np.linspace(0, n - 1, keep + 2)[1:-1].round().astype(int)))
        budget = max(1, budget // keep)
    return tuple(index)


# ----------------------------------------------------------------------------- public API


def write_layers(
    path: str | os.PathLike,
    layers: Sequence,
    *,
    name: str | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    codec: str | None = None,
    level: int | None = None,
    index_crc32c: bool = True,
    checksum: bool = True,
    shard_bytes: int = SHARD_BYTES,
    pyramid_levels: int | str | None = None,
    image_method: str = "mean",
    labels_method: str = "mode",
    pyramid_from: str = "written",
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    copy_unchanged: bool = True,
) -> str:
    """Save napari layers (``Layer`` objects, ``LayerData`` tuples or :class:`LayerIn`) as one
    ``.ozx``; returns the path once the archive is complete on disk.

    Unchanged arrays read from an ``.ozx`` (what napari holds after opening one, untouched)
    are copied as they are stored, with no decode or encode (:mod:`.rawcopy`); without
    ``chunks``/``shards``/``codec``/``level`` they keep their stored layout (default: zstd
    level 3 for the rest), with them only a source laid out the same way is copied.

    ``copy_unchanged=False`` encodes them again all the same.

    ``pyramid_levels``: None (default) builds a pyramid only where it helps napari (a plane
    larger than :data:`~.pyramid.SCREEN_TILE` along y or x, or a volume larger than
    :data:`~.pyramid.VOLUME_BYTES`), down to one chunk; ``"full"`` builds one down to one chunk
    whatever the size; an integer asks for that many levels in all (1: none).
    """
    if pyramid_from not in ("written", "source"):
        raise ValueError(f"pyramid_from must be 'written' or 'source', not {pyramid_from!r}")
    items = []
    for layer in layers:
        if isinstance(layer, LayerIn):
            items.append(layer)
        elif isinstance(layer, tuple):
            items.append(from_layer_data(*layer))
        else:
            items.append(from_layer(layer))
    storage = StorageOptions(
        chunks=tuple(chunks) if chunks is not None else None,
        shards=tuple(shards) if shards is not None else None,
        codec="zstd" if codec is None else codec, level=3 if level is None else level,
        index_crc32c=index_crc32c, shard_bytes=shard_bytes, checksum=checksum,
        keep_layout=chunks is None and shards is None and codec is None and level is None,
        copy_unchanged=copy_unchanged)
    plan = plan_layers(items, storage=storage, name=name, pyramid_levels=pyramid_levels,
                       image_method=image_method, labels_method=labels_method,
                       default_name=os.path.splitext(os.path.basename(os.fspath(path)))[0])
    job = _Job(path, plan, storage, progress=progress, cancel=cancel, pyramid_from=pyramid_from)
    from ..read.guard import strict_reads

    with strict_reads():  # a chunk that cannot be read fails the save, never saved as blank
        return job.run()


def _arrays_as_layers(image, *, axes, name, scale, translate, units, channel_names, colormaps,
                      contrast_limits) -> list[LayerIn]:
    levels = _levels_of(image, None)
    ndim = levels[0].ndim
    if axes is None:
        axes = None
    elif len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} names for {ndim} dimensions")
    names = list(axes) if axes is not None else None
    c = names.index("c") if names is not None and "c" in names else None
    spatial_names = [n for n in names if n != "c"] if names is not None else None
    meta = {"name": name or "image", "axis_labels": spatial_names,
            **_axis_meta(scale, translate, units)}
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


def _axis_meta(scale, translate, units) -> dict:
    """Layer metadata for the per-axis options given to :func:`write_ozx` (only those given)."""
    meta = {}
    if scale is not None:
        meta["scale"] = [float(v) for v in scale]
    if translate is not None:
        meta["translate"] = [float(v) for v in translate]
    if units is not None:
        meta["units"] = units
    return meta


def write_ozx(
    path: str | os.PathLike,
    image=None,
    labels=None,
    *,
    axes: str | Sequence[str] | None = None,
    name: str | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    units: str | Sequence[str] | None = None,
    channel_names: Sequence[str] | None = None,
    colormaps: Sequence | None = None,
    contrast_limits: Sequence | None = None,
    **options,
) -> str:
    """Save an image (and label images) as an RFC-9 ``.ozx``; returns ``path`` once complete.

    ``image``: a numpy/dask/zarr array (``axes`` such as ``"czyx"`` names its axes; a ``c``
    axis makes channels), a list of arrays (a pyramid, largest first), a napari Image layer,
    or a list of Image layers (saved as channels).  ``labels``: an integer array, a Labels
    layer, a list of them, or ``{name: array}``.  ``scale``/``translate``/``units`` are per
    axis without ``c``.  ``options`` go to :func:`write_layers` (``chunks``, ``shards``,
    ``codec``, ``level``, ``checksum`` (False: no checksum in each inner chunk),
    ``pyramid_levels``, ``image_method``, ``labels_method``,
    ``progress``, ``cancel``...).
    """
    layers: list = []
    if image is not None:
        if _is_layer(image) or (isinstance(image, (list, tuple)) and image
                                and all(_is_layer(x) for x in image)):
            layers.extend(image if isinstance(image, (list, tuple)) else [image])
        else:
            layers.extend(_arrays_as_layers(
                image, axes=axes, name=name, scale=scale, translate=translate, units=units,
                channel_names=channel_names, colormaps=colormaps,
                contrast_limits=contrast_limits))
    if labels is not None:
        if isinstance(labels, Mapping):
            items = list(labels.items())
        elif _is_layer(labels) or not isinstance(labels, (list, tuple)):
            items = [(None, labels)]
        else:
            items = [(None, x) for x in labels]
        spatial = [a for a in axes if a != "c"] if axes is not None else None
        for i, (key, lab) in enumerate(items):
            if _is_layer(lab):
                layers.append(lab)
                continue
            meta = {"name": key or f"labels{i if i else ''}", "axis_labels": spatial,
                    **_axis_meta(scale, translate, units)}
            layers.append(LayerIn("labels", meta["name"], _levels_of(lab, None), meta))
    return write_layers(path, layers, name=name, **options)


def _is_layer(x) -> bool:
    return hasattr(x, "as_layer_data_tuple") or isinstance(x, (LayerIn,)) or (
        isinstance(x, tuple) and len(x) == 3 and isinstance(x[2], str))
