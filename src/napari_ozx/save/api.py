"""Save images and labels (arrays or napari layers) as one OME-Zarr 0.5 ``.ozx`` archive.

The public entry points of the save, and only those: :func:`write_ozx` (scripts) and
:func:`write_layers` (the npe2 writer, the export widget, :func:`~.edit.add_labels`).  Both
run the one code path:

* :mod:`.inputs`: what napari or a script gives us -> :class:`~.inputs.LayerIn`;
* :mod:`.plan`: layers -> :class:`~.plan.Plan` (grouping, axes, pyramid steps);
  :mod:`.options` the storage layout of each level;
* :mod:`.job`: the plan -> an archive: zarr makes each array's ``zarr.json``; one task per
  slab of a shard (:mod:`.tasks`), run with a bounded window (:mod:`.scheduler`) on whatever
  dask scheduler is active, computes the slab's pixels, encodes its inner chunks
  (:mod:`.encoder`, the bytes zarr's sharding codec writes) and downsamples them for the next
  pyramid level (:mod:`.cascade`); the encoded chunks come back to the caller's process, which
  appends them to the archive as they come (:mod:`.collector`; a shard that waits for its last
  chunk waits in a :mod:`.spill` file beside the archive); unchanged arrays read from an
  archive are copied as stored (:mod:`.rawcopy`); :mod:`napari_ozx.ome.write` makes the OME
  metadata.

So at most a window of tasks is in flight, which bounds memory whatever the image size (a
slab per task, plus a few partly filled inner chunks per pyramid level).  Every source pixel
is computed once and no level is read back: pyramid level ``k+1`` is made from level ``k``'s
pixels as they are written.  Only where the inner chunks do not hold whole downsampling
windows is level ``k`` read back from the archive being written (by path, so workers on this
machine can do it); with ``pyramid_from="source"`` the levels are chained lazily from the
source instead.

Nothing reaches the destination before the archive is complete: a failure, an exception in
the data, or a cancel leaves the file that was there (if any) as it was.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import WriteCancelled
from ..read.guard import strict_reads
from .inputs import LayerIn, arrays_as_layers, as_layer_in, axis_meta, is_layer, levels_of
from .job import Job
from .options import CODECS, SHARD_BYTES, StorageOptions, default_chunks, default_shards
from .plan import Plan, plan_layers

__all__ = ["write_ozx", "write_layers", "WriteCancelled", "StorageOptions", "Plan", "plan_layers",
           "default_chunks", "default_shards", "CODECS", "SHARD_BYTES"]


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
    items = [as_layer_in(layer) for layer in layers]
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
    job = Job(path, plan, storage, progress=progress, cancel=cancel, pyramid_from=pyramid_from)
    with strict_reads():  # a chunk that cannot be read fails the save, never saved as blank
        return job.run()


def write_ozx(
    path: str | os.PathLike,
    image: Any = None,
    labels: Any = None,
    *,
    axes: str | Sequence[str] | None = None,
    name: str | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    units: str | Sequence[str] | None = None,
    channel_names: Sequence[str] | None = None,
    colormaps: Sequence | None = None,
    contrast_limits: Sequence | None = None,
    **options: Any,
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
    layers: list[Any] = []
    if image is not None:
        if is_layer(image) or (isinstance(image, (list, tuple)) and image
                                and all(is_layer(x) for x in image)):
            layers.extend(image if isinstance(image, (list, tuple)) else [image])
        else:
            layers.extend(arrays_as_layers(
                image, axes=axes, name=name, scale=scale, translate=translate, units=units,
                channel_names=channel_names, colormaps=colormaps,
                contrast_limits=contrast_limits))
    if labels is not None:
        if isinstance(labels, Mapping):
            items = list(labels.items())
        elif is_layer(labels) or not isinstance(labels, (list, tuple)):
            items = [(None, labels)]
        else:
            items = [(None, x) for x in labels]
        spatial = [a for a in axes if a != "c"] if axes is not None else None
        for i, (key, lab) in enumerate(items):
            if is_layer(lab):
                layers.append(lab)
                continue
            meta = {"name": key or f"labels{i if i else ''}", "axis_labels": spatial,
                    **axis_meta(scale, translate, units)}
            layers.append(LayerIn("labels", meta["name"], levels_of(lab, None), meta))
    return write_layers(path, layers, name=name, **options)
