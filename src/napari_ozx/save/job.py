"""Running one :class:`~.plan.Plan`: the archive, its arrays, their shards and the metadata.

:class:`Job` opens the archive (:class:`~.store.OzxWriteStore`, a temporary file beside the
destination), has zarr make each array's ``zarr.json`` for the layout the storage options give
(:class:`~.options.ArrayLayout`), and writes each level: copied entry by entry when it is
unchanged data read from an archive (:mod:`.rawcopy`), else as tasks (:mod:`.tasks`) run with
a bounded window (:mod:`.scheduler`) whose encoded chunks the collector (:mod:`.collector`)
files into shards, the pyramid below built from them as they come (:mod:`.cascade`) or, where
chunks and downsampling windows do not line up, from the level read back.  Last it writes the
OME attributes (:mod:`napari_ozx.ome.write`: multiscales, OMERO channels with contrast limits
sampled from the data written, label colours and properties) and commits the archive; a
failure or a cancel aborts it and leaves the destination as it was.

It does not decide what to write (:mod:`.plan`), how a shard's bytes look (:mod:`.encoder`)
or how the ZIP is laid out (:mod:`napari_ozx.zip.writer`).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import dask
import dask.array as da
import numpy as np

from ..errors import OzxError, WriteCancelled
from ..ome.write import (
    OME_VERSION,
    image_label_metadata,
    multiscales_metadata,
    omero_metadata,
    properties_from_features,
    sample_window,
)
from ..read import provenance
from . import rawcopy
from .cascade import Assembly, aligned, visit_order
from .collector import ShardCollector
from .grid import Grid, n_shards
from .options import ArrayLayout, StorageOptions
from .plan import ArrayPlan, Plan
from .pyramid import downsample
from .scheduler import stream
from .tasks import Encoded, Work, encode_task, read_shard, slab_chunks, slab_regions

if TYPE_CHECKING:
    import zarr

__all__ = ["Job", "StoredLevel"]


class StoredLevel(NamedTuple):
    """One level as the archive holds it."""

    name: str  # its path in the archive: "0", "labels/cells/1"
    metadata: bytes  # its zarr.json
    layout: ArrayLayout


class Job:
    """Writes ``plan`` to ``path`` with ``storage``; :meth:`run` does it."""

    def __init__(self, path: str | os.PathLike, plan: Plan, storage: StorageOptions, *,
                 progress: Callable[[int, int], None] | None,
                 cancel: threading.Event | None, pyramid_from: str):
        from .store import OzxWriteStore  # imports zarr: paid by the first save

        self.path = os.fspath(path)
        self.plan = plan
        self.storage = storage
        self.progress = progress
        self.cancel = cancel
        self.pyramid_from = pyramid_from
        self.done = 0
        self._copier: rawcopy.Copier | None = None
        self._metadata: dict[tuple[str, int], bytes] = {}  # see _array_metadata
        self.layouts: dict[tuple[str, int], ArrayLayout] = {}
        # levels whose stored entries are copied from the archive they were read from
        self.copies: dict[tuple[str, int], rawcopy.Copy] = {}
        self.total = 0
        for ap in plan.arrays():
            for k in range(ap.n_levels):
                layout = storage.array_layout(self._level_shape(ap, k), ap.types,
                                              ap.levels[0].dtype)
                self.layouts[(ap.path, k)] = layout
                copy = self._plan_copy(ap, k)
                if copy is not None:
                    self.copies[(ap.path, k)] = copy
                    self.total += len(copy.entries)
                else:
                    self.total += n_shards(layout.shape, layout.shards)
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
            shape = [math.ceil(s / f) for s, f in zip(shape, step, strict=True)]
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
        """Write the archive; returns its path once it is complete on disk."""
        import zarr

        try:
            root = zarr.open_group(self.store, mode="w", zarr_format=3)
            if self.plan.labels:
                labels = root.create_group("labels")
                for ap in self.plan.labels:
                    labels.create_group(ap.label_name)
            arrays = {ap.path: [self._create_array(ap, k) for k in range(ap.n_levels)]
                      for ap in self.plan.arrays()}
            # Stored entries to copy take their places first and are copied by a thread while
            # the rest is encoded (the copy is the kernel's work, the encoding the cores').
            copier = rawcopy.Copier(self.writer, [(copy, arrays[path][k].name)
                                                  for (path, k), copy in self.copies.items()],
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

        layout = self.layouts[(ap.path, k)]
        index: list[BytesCodec | Crc32cCodec] = [BytesCodec()]
        if self.storage.index_crc32c:
            index.append(Crc32cCodec())
        arr = zarr.create_array(
            zarr.storage.MemoryStore(), shape=layout.shape, dtype=ap.levels[0].dtype,
            chunks=layout.shards,
            serializer=ShardingCodec(chunk_shape=layout.chunks, codecs=self.storage.codecs(),
                                     index_codecs=index),
            compressors=None, filters=None, fill_value=0,
            dimension_names=[a["name"] for a in ap.axes],
        )
        return arr.metadata.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()

    def _create_array(self, ap: ArrayPlan, k: int) -> StoredLevel:
        name = ap.level_path(k)
        copy = self.copies.get((ap.path, k))
        meta = copy.metadata if copy is not None else self._array_metadata(ap, k)
        self.writer.set_metadata(f"{name}/zarr.json", meta)
        return StoredLevel(name, meta, self.layouts[(ap.path, k)])

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _copied_label_values(self, ap: ArrayPlan, copy: rawcopy.Copy) -> None:
        values = rawcopy.source_label_values(copy.source)
        if values is None:  # the source lists none: find them (a decode, once)
            values = np.unique(np.asarray(ap.levels[0]))
        self.values[ap.path] = values

    def _write_multiscale(self, ap: ArrayPlan, arrays: list[StoredLevel]) -> None:
        n_levels = ap.n_levels
        if not ap.steps and any((ap.path, k) in self.copies for k in range(n_levels)):
            for k in range(n_levels):
                copy = self.copies.get((ap.path, k))
                if copy is None:
                    self._write_level(ap, arrays, k, ap.levels[k])
                elif ap.kind == "labels" and k == 0:  # the copy itself is the Copier's
                    self._copied_label_values(ap, copy)
            return
        chunk_grids = [Grid(lvl.layout.shape, lvl.layout.chunks) for lvl in arrays]
        if ap.steps and self.pyramid_from == "written" and aligned(chunk_grids, ap.steps):
            for k in range(len(ap.levels) - 1):
                self._write_level(ap, arrays, k, ap.levels[k])
            self._write_level(ap, arrays, len(ap.levels) - 1, ap.levels[-1], cascade=True)
            return
        # Computed levels one after another: from the source (pyramid_from="source"), or
        # from the level before as written (read back) when chunks and windows do not align.
        source = ap.levels[0]
        previous: da.Array | None = None
        for k in range(n_levels):
            step = ap.steps[k - len(ap.levels)] if k >= len(ap.levels) else None
            if step is None:
                level = ap.levels[k]
            elif self.pyramid_from == "source":
                level = source = downsample(source, step, ap.method)
            else:
                assert previous is not None  # read back after the level before was written
                level = downsample(previous, step, ap.method)
            self._write_level(ap, arrays, k, level)
            if k + 1 < n_levels and self.pyramid_from != "source":
                previous = self._read_back(arrays[k].name, arrays[k].metadata, level.dtype)

    def _write_level(self, ap: ArrayPlan, arrays: list[StoredLevel], k: int, level: da.Array,
                     *, cascade: bool = False) -> None:
        """Write level ``k``; with ``cascade``, every level below it too, each built from the
        inner chunks of the one above as they are encoded (:mod:`.cascade`)."""
        from .encoder import ShardEncoder  # imports zarr: paid by the first save

        name, shape = arrays[k].name, arrays[k].layout.shape
        if tuple(level.shape) != tuple(shape):
            raise OzxError(f"level {name} has shape {tuple(level.shape)}, expected {shape}",
                           archive=self.path, entry=f"{name}/zarr.json")
        below = arrays[k:] if cascade else arrays[k:k + 1]
        steps = ap.steps[k - len(ap.levels) + 1:] if cascade else []
        found = [ShardEncoder.from_metadata(lvl.metadata) for lvl in below]
        encoders = [e for e in found if e is not None]
        if len(encoders) != len(found):  # _create_array makes only layouts it covers
            raise OzxError(f"no shard encoder for the layout of {name}", archive=self.path)
        grids = [Grid(lvl.layout.shape, lvl.layout.shards) for lvl in below]
        # the pieces of a level are gathered into whole inner chunks of the next
        assemblies = [Assembly(Grid(lvl.layout.shape, lvl.layout.chunks), level.dtype)
                      for lvl in below[1:]]
        unique = ap.kind == "labels" and k == 0

        def step_of(depth: int) -> tuple[int, ...] | None:
            """The step from level k + depth to the next one (None: the last level)."""
            return steps[depth] if depth < len(steps) else None

        # Level k's shards, as slabs computed one after another (see tasks.slab_chunks),
        # the shards in visit order (the archive side: collector.ShardCollector)
        layout = arrays[k].layout
        slab_grid = slab_chunks(layout.shape, layout.shards, layout.chunks, step_of(0),
                                level.chunks)
        blocks = level.rechunk(slab_grid).to_delayed(optimize_graph=True)
        spots = grids[0].regions
        order: Sequence[int] = visit_order(grids, steps) if steps else range(len(spots))
        heads = [grids[0].index_at([a for a, _ in spots[i]]) for i in order]
        shards_out = ShardCollector(self.writer, [lvl.name for lvl in below], encoders, heads,
                                    self.spill_dir, self._tick)

        def work(depth: int, data: list, boxes: list) -> Work:
            return Work(encode_task, data, (below[depth].metadata, boxes,
                                            unique and depth == 0, step_of(depth), ap.method),
                        tag=depth)

        def on_result(w: Work, result: Encoded) -> list[Work]:
            depth = w.tag
            shards_out.add(depth, result.chunks)
            if result.values is not None:
                prev = self.values.get(ap.path)
                self.values[ap.path] = (result.values if prev is None
                                        else np.union1d(prev, result.values))
            new = []
            for box, piece in result.pieces:
                done = assemblies[depth].add(box, piece)
                if done:
                    new.append(work(depth + 1, [px for _, px in done], [r for r, _ in done]))
            return new

        def level_k() -> Iterator[Work]:
            for i in order:
                for ix, sub in slab_regions(slab_grid, spots[i]):
                    yield work(0, [blocks[ix]], [sub])

        with shards_out:
            stream(level_k(), on_result, self.cancel)
        left = shards_out.unfinished + [a.pending for a in assemblies]
        if any(left):  # every chunk was delivered, so this would be a bug, not bad input
            raise OzxError(f"pyramid of {name} left shards or chunks unfinished: {left}",
                           archive=self.path)

    def _read_back(self, name: str, meta: bytes, dtype: Any) -> da.Array:
        """Level ``name`` (``meta``: its zarr.json) as written, read from the archive being
        written (by path: workers on this machine can read it too)."""
        from .encoder import ShardEncoder  # imports zarr: paid by the first save

        tmp = self.writer.temporary_path
        encoder = ShardEncoder.from_metadata(meta)
        if encoder is None:  # _create_array makes only layouts it covers
            raise OzxError(f"no shard encoder for the layout of {name}", archive=self.path)
        grid = encoder.grid
        spans = {}
        for index in itertools.product(*map(range, grid.counts)):
            key = encoder.key(index)
            spans[key] = self.writer.data_span(f"{name}/{key}")

        def block(block_id: tuple[int, ...]) -> np.ndarray:
            key = encoder.key(block_id)
            return read_shard(meta, key, tmp, spans.get(key), grid.region(block_id))

        return da.map_blocks(block, chunks=grid.dask_chunks, dtype=dtype,
                             meta=np.empty((0,) * len(grid.shape), dtype=dtype),
                             name="ozx-readback-" + dask.base.tokenize(tmp, name, meta))

    def _read_level(self, ap: ArrayPlan, k: int) -> da.Array:
        """Level ``k`` of ``ap`` as written (for the contrast limits sampled from it)."""
        name = ap.level_path(k)
        meta = self.writer.get(f"{name}/zarr.json")
        if meta is None:
            raise OzxError(f"level {name} has no zarr.json", archive=self.path,
                           entry=f"{name}/zarr.json")
        return self._read_back(name, meta, ap.levels[0].dtype)

    def _write_attributes(self, root: zarr.Group) -> None:
        import zarr

        img = self.plan.image
        ome: dict[str, Any] = {"version": OME_VERSION, "multiscales": self._multiscales(img)}
        windows = _data_windows(self, img)
        if windows is not None:
            img.attrs["omero"] = omero_metadata(img.channels, img.levels[0].dtype, windows)
        ome.update(img.attrs)
        root.attrs.update({"ome": ome, **({"napari-ozx": img.napari} if img.napari else {})})
        if not self.plan.labels:
            return
        names = [ap.label_name for ap in self.plan.labels]
        zarr.open_group(self.store, path="labels", mode="r+").attrs.update(
            {"ome": {"version": OME_VERSION, "labels": names}})
        for ap in self.plan.labels:
            values = self.values.get(ap.path, np.zeros(0, dtype=np.int64))
            rgba = _label_colours(ap.layer.meta.get("colormap") if ap.layer else None,
                                  values, ap.levels[0].dtype)
            props = properties_from_features(
                ap.layer.meta.get("features") if ap.layer else None, values.tolist())
            lab: dict[str, Any] = {
                "version": OME_VERSION, "multiscales": self._multiscales(ap),
                "image-label": image_label_metadata(values.tolist(), rgba, properties=props)}
            zarr.open_group(self.store, path=ap.path, mode="r+").attrs.update({"ome": lab})

    def _multiscales(self, ap: ArrayPlan) -> list[dict]:
        return multiscales_metadata(
            name=ap.name, axes=ap.axes, paths=[str(k) for k in range(ap.n_levels)],
            scale=ap.scale, translate=ap.translate, factors=ap.factors,
            method=ap.method if ap.steps else None)


def _label_colours(colormap: Any, values: np.ndarray, dtype: Any) -> np.ndarray:
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
            except Exception:  # a colormap napari refuses: its default, as napari shows it
                pass
        cmap = probe.colormap
    return np.asarray(cmap.map(np.asarray(values)), dtype=float)


#: values looked at (per channel) to pick contrast limits from the data
WINDOW_SAMPLE = 1 << 22


def _data_windows(job: Job, ap: ArrayPlan) -> list | None:
    """Per-channel robust windows (:func:`~napari_ozx.ome.write.sample_window`) for the
    channels saved without contrast limits (None when all have them), read back from the
    archive.

    The sample is the largest level of at most WINDOW_SAMPLE values per channel, whole (the
    whole field of view counts), together with up to WINDOW_SAMPLE / 4 values of level 0
    from the shard at its centre (full resolution: downsampling alone would average the noise and
    the small bright spots away).  Each shard involved is read once."""
    if all(ch.get("contrast_limits") is not None for ch in ap.channels):
        return None
    layouts = [job.layouts[(ap.path, k)] for k in range(ap.n_levels)]
    types = ap.types
    c = types.index("channel") if "channel" in types else None
    per_channel = [math.prod(lay.shape) // (lay.shape[c] if c is not None else 1)
                   for lay in layouts]
    k = next((j for j, n in enumerate(per_channel) if n <= WINDOW_SAMPLE), len(layouts) - 1)
    dtype = ap.levels[0].dtype

    small, centre = job._read_level(ap, k), None
    if k > 0:  # level 0's central shard, all channels (at most one shard: SHARD_BYTES)
        shape0, shards0 = layouts[0].shape, layouts[0].shards
        box = tuple(slice(None) if j == c else slice(n // 2 // s * s, n // 2 // s * s + s)
                    for j, (n, s) in enumerate(zip(shape0, shards0, strict=True)))
        centre = job._read_level(ap, 0)[box]
    n_channels = small.shape[c] if c is not None else 1
    out: list[tuple[float, float, float, float] | None] = []
    for i in range(n_channels):
        if ap.channels[i].get("contrast_limits") is not None:
            out.append(None)
            continue
        parts = [_take(small, _sample_index(small.shape, types, c, i))]
        if centre is not None:
            parts.append(_take(centre, _sample_index(centre.shape, types, c, i,
                                                     budget=WINDOW_SAMPLE // 4)))
        out.append(sample_window(np.concatenate([p.ravel() for p in parts]), dtype))
    return out


def _take(array: da.Array, index: tuple) -> np.ndarray:
    """Outer indexing (one index per axis, applied axis by axis), computed."""
    for axis, ix in enumerate(index):
        if not (isinstance(ix, slice) and ix == slice(None)):
            array = array[(slice(None),) * axis + (ix,)]
    return np.asarray(array.compute(scheduler="threads"))


def _sample_index(shape: Sequence[int], types: Sequence[str | None], c: int | None, i: int,
                  budget: int = WINDOW_SAMPLE) -> tuple:
    """An index of at most about WINDOW_SAMPLE values of channel ``i``: evenly spaced planes
    of the other non-space axes, then the centre of the space axes."""
    index: list = []
    for axis, (n, t) in enumerate(zip(shape, types, strict=True)):
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
