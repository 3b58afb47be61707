"""Where layer data came from, so that a save copies the stored bytes of data that did not
change.

The reader makes every lazy array through :func:`lazy`, which registers it: a dask array named
by the archive (path, size and modification time), the array path, shape, dtype and chunks,
reading one zarr array of an open :class:`~napari_ozx.read.store.OzxStore`.  Any operation on a
dask array makes a new graph with a new name, so a level whose dask name is registered holds
exactly the pixels of that zarr array, and the zarr array's entries can be copied as they are
stored.  The store reads through the file descriptor it opened, so the bytes copied are the
bytes shown, even after the archive was saved over (the old file lives on while it is open).

Two shapes of "unchanged" are recognised besides a registered array itself:

* a channel of a registered array as napari splits it (``channel_axis``: ``np.take(level, i,
  axis)``) or as our reader slices it (``level[..., i, ...]``); :func:`restack` turns all the
  channels of one source, in order, back into the source;
* a label image loaded whole into memory for painting (:func:`register_loaded`), unchanged while
  its SHA-1 digest is the one taken at loading.

Nothing here does I/O; a miss only means the data is encoded again.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["lazy", "register_loaded", "source_of",
           "restack", "loaded_source", "digest"]

_lock = threading.RLock()  # re-entrant: a finalizer may run while it is held
#: dask name -> the zarr array it reads.  Weak: the zarr array lives inside the graphs of the
#: dask arrays that read it (the reader inlines it), napari's slices of them included, and is
#: forgotten with the last of them.  The dask array objects themselves are not kept: napari
#: keeps only its slices of them, so they are rebuilt (same name, same graph) when needed.
_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_chunks: dict[str, tuple] = {}


def lazy(zarr_array, chunks: tuple, name: str):
    """A dask array of that name reading all of ``zarr_array`` in ``chunks``, registered (the
    reader's one way of making one; see :func:`napari_ozx.ome.arrays.to_dask`)."""
    out = _from_array(zarr_array, chunks, name)
    with _lock:
        _arrays[name] = zarr_array
        _chunks[name] = out.chunks
    weakref.finalize(zarr_array, _forget_array, name)
    return out


def _from_array(zarr_array, chunks, name: str):
    import dask.array as da

    from .guard import Guarded  # a chunk that cannot be read: reported once, shown blank

    return da.from_array(Guarded(zarr_array), chunks=chunks, name=name, inline_array=True,
                         asarray=False, fancy=False,
                         meta=np.empty((0,) * zarr_array.ndim, dtype=zarr_array.dtype))


def _forget_array(name: str) -> None:
    with _lock:
        if name not in _arrays:
            _chunks.pop(name, None)


def _rebuild(name: str):
    """The registered dask array of that name (the same graph the reader made), or None."""
    with _lock:
        array, chunks = _arrays.get(name), _chunks.get(name)
    if array is None or chunks is None:
        return None
    return _from_array(array, chunks, name)


def source_of(level) -> Any | None:
    """The zarr array whose stored bytes ``level`` shows unchanged, or None."""
    name = getattr(level, "name", None)
    if not isinstance(name, str):
        return None
    with _lock:
        return _arrays.get(name)


def _is_channel(part, source, axis: int, i: int) -> bool:
    """Is the dask array ``part`` channel ``i`` of ``source`` along ``axis``: as our reader and
    napari's ``slice_from_axis`` (``channel_axis``) slice it, or as ``np.take`` takes it?"""
    name = getattr(part, "name", None)
    index = (slice(None),) * axis + (i,)
    return name is not None and name in (source[index].name,
                                         np.take(source, i, axis=axis).name)


def restack(parts: list, axis: int):
    """``da.stack(parts, axis)``, or the registered source itself when ``parts`` are all its
    channels along ``axis``, in order (so the stacked level is copied, not encoded)."""
    import dask.array as da

    first = parts[0] if parts else None
    if first is not None and hasattr(first, "dask"):
        shape = tuple(first.shape)
        with _lock:
            names = [n for n, a in _arrays.items()
                     if a.ndim == len(shape) + 1 and a.shape[axis] == len(parts)
                     and tuple(a.shape[:axis]) + tuple(a.shape[axis + 1:]) == shape
                     and a.dtype == first.dtype]
        for name in names:
            source = _rebuild(name)
            if source is not None and all(
                    _is_channel(p, source, axis, i) for i, p in enumerate(parts)):
                return source
    return da.stack(parts, axis=axis)


@dataclass
class _Loaded:
    digest: bytes
    levels: list  # the registered dask levels the array was loaded from (level 0 first)


#: id of an in-memory array loaded from a registered level 0 -> what it was loaded from
_loaded: dict[int, _Loaded] = {}


def digest(array: np.ndarray) -> bytes:
    """SHA-1 of an array's bytes (a collision would need a deliberate attack, not a brush)."""
    return hashlib.sha1(np.ascontiguousarray(array).data.cast("B")).digest()


def register_loaded(array: np.ndarray, levels: list) -> None:
    """``array`` was loaded whole from ``levels[0]`` (a registered dask level)."""
    key = id(array)
    with _lock:
        _loaded[key] = _Loaded(digest(array), list(levels))
    weakref.finalize(array, _forget, key)


def _forget(key: int) -> None:
    with _lock:
        _loaded.pop(key, None)


def loaded_source(array) -> list | None:
    """The registered levels an in-memory array was loaded from, if it still holds exactly
    those pixels (checked by digest), else None."""
    if not isinstance(array, np.ndarray):
        return None
    with _lock:
        entry = _loaded.get(id(array))
    if entry is None:
        return None
    if digest(array) != entry.digest:
        return None
    return entry.levels
