"""A failing chunk in a viewer: one message naming the archive and the entry, not a traceback
per tile, and the rest of the image still drawn.

:class:`Guarded` stands between a zarr array and the dask array a layer shows.  A read that
fails (a chunk whose checksum does not match, a CRC-32 mismatch, a truncated or unreadable
shard, a server that gave up) answers the fill value for that block - shown blank, never as
decoded garbage - and is reported once per (archive, entry) through :data:`reporter`: a
warning by default; the napari reader installs one that shows a napari notification.

Only for display: while a save runs (:func:`strict_reads`, which :func:`~napari_ozx.write_layers`
enters) a failing read raises as it would without the guard, so a save never writes fill
value in place of pixels it could not read - it fails, naming the entry, and the destination
stays as it was.  (Process-wide: a viewer drawing a failing tile during a save sees the error.)
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable

import numpy as np

from ..errors import OzxWarning

__all__ = ["Guarded", "ChunkReadWarning", "set_reporter", "reported", "forget", "strict_reads"]


class ChunkReadWarning(OzxWarning):
    """A chunk could not be read; it is shown as fill value."""


def _warn(message: str) -> None:
    warnings.warn(message, ChunkReadWarning, stacklevel=2)


reporter: Callable[[str], None] = _warn
_lock = threading.Lock()
_seen: set[tuple[str, str]] = set()
_strict = 0  # saves running: reads must not be replaced by fill value


@contextlib.contextmanager
def strict_reads():
    """While inside, guarded reads raise instead of answering fill value (saves)."""
    global _strict
    with _lock:
        _strict += 1
    try:
        yield
    finally:
        with _lock:
            _strict -= 1


def set_reporter(fn: Callable[[str], None] | None) -> None:
    """Where failures are reported (None: back to warnings)."""
    global reporter
    reporter = fn or _warn


def forget(archive: str) -> None:
    """Report the failures of ``archive`` again (it is being opened anew)."""
    with _lock:
        for item in [x for x in _seen if x[0] == archive]:
            _seen.discard(item)


def reported() -> set[tuple[str, str]]:
    """(archive, entry) pairs reported so far in this process."""
    with _lock:
        return set(_seen)


def _archive_name(array) -> str:
    store = array.store
    archive = getattr(store, "archive", None)
    return str(getattr(archive, "name", None) or store)


def _entries(array, key) -> list[str]:
    """The stored entries (shards, or chunks when unsharded) holding region ``key``."""
    grid = getattr(array, "shards", None) or array.chunks
    lo, hi = [], []
    for k, g, n in zip(key, grid, array.shape, strict=False):  # key may be shorter
        if isinstance(k, slice):
            start, stop, _ = k.indices(n)
        else:
            start = stop = int(k)
            stop += 1
        lo.append(start // g)
        hi.append(max(start, stop - 1) // g + 1)
    import itertools

    prefix = f"{array.path}/" if array.path else ""
    out = []
    for coords in itertools.product(*(range(a, b) for a, b in zip(lo, hi, strict=True))):
        out.append(prefix + array.metadata.encode_chunk_key(coords))
        if len(out) > 4:
            break
    return out


class Guarded:
    """``array`` (a zarr array) for ``dask.array.from_array``: blocks that cannot be read are
    fill value, each failing entry reported once."""

    def __init__(self, array):
        self.array = array
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception as e:  # noqa: BLE001 - every read failure is shown the same way
            if _strict:
                raise
            self._report(key, e)
            shape = tuple(len(range(*k.indices(n))) for k, n in zip(key, self.shape, strict=False)
                          if isinstance(k, slice))
            fill = self.array.metadata.fill_value if hasattr(self.array.metadata,
                                                             "fill_value") else 0
            try:
                return np.full(shape, fill, dtype=self.dtype)
            except (TypeError, ValueError):
                return np.zeros(shape, dtype=self.dtype)

    def _report(self, key, e: Exception) -> None:
        key = key if isinstance(key, tuple) else (key,)
        archive = _archive_name(self.array)
        try:
            entries = _entries(self.array, key)
        except Exception:  # noqa: BLE001
            entries = [self.array.path or "/"]
        entry = getattr(e, "entry", None) or entries[0]
        with _lock:
            if (archive, entry) in _seen:
                return
            _seen.add((archive, entry))
        region = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                           for k in key)
        detail = getattr(e, "message", None) or str(e)
        reporter(f"{archive}: entry {entry!r}: cannot be read ({type(e).__name__}: {detail}); "
                 f"pixels [{region}] of array {self.array.path or '/'!r} are shown blank "
                 "(fill value)")
