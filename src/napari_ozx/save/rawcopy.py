"""Saving an unchanged array read from an ``.ozx``: its stored entries, copied as they are.

A level whose dask array is one the reader made (:mod:`.provenance`) holds exactly the pixels of
a zarr array in an open archive.  When the array's stored layout is one the save may keep, its
chunk (or shard) entries go into the new archive byte for byte (``copy_file_range`` for STORED
entries of a local archive, a whole-entry read otherwise): no decode, no encode, no pyramid.

Which layout may be kept: with no storage option given (``chunks``, ``shards``, ``codec``,
``level`` all left to the default) the source's, whatever it is (any Zarr v3 array: sharded or
not, any codecs); with options given, only a source layout equal to the one those options make
(same shape, data type, chunk grid, chunk key encoding, codecs and fill value).  Zarr v2 arrays
(OME-Zarr 0.4) are always encoded again: an OME-Zarr 0.5 archive holds Zarr v3 only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import WriteCancelled
from ..read import provenance

if TYPE_CHECKING:
    from ..zip.writer import OzxWriter, Reservation

__all__ = ["Copy", "Copier", "plan_copy", "source_label_values"]

#: the fields of an array's ``zarr.json`` that decide its stored bytes
LAYOUT_FIELDS = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "codecs",
                 "fill_value")


@dataclass
class Copy:
    """One array to copy: where it is, and the ``zarr.json`` to write for it."""

    source: Any  # the zarr array (in an OzxStore)
    metadata: bytes  # the new zarr.json (the source's layout, the new dimension names)
    entries: list[str]  # the source's entry names of its chunks or shards

    @property
    def archive(self):
        return self.source.store.archive


def _stored_document(source) -> dict | None:
    archive = getattr(source.store, "archive", None)
    if archive is None:
        return None
    raw = archive.read(f"{source.path}/zarr.json" if source.path else "zarr.json")
    if raw is None:
        return None
    doc = json.loads(raw)
    return doc if isinstance(doc, dict) and doc.get("zarr_format") == 3 else None


def plan_copy(level, dimension_names: list[str], ours: bytes | None) -> Copy | None:
    """A :class:`Copy` of the array ``level`` shows, or None when it must be encoded.

    ``ours``: the ``zarr.json`` the save would write for it from explicit storage options
    (the source's layout must equal it), or None to keep the source's layout.
    """
    source = provenance.source_of(level)
    if source is None or tuple(source.shape) != tuple(level.shape):
        return None
    doc = _stored_document(source)
    if doc is None or doc.get("node_type") != "array":
        return None
    if ours is not None:
        want = json.loads(ours)
        if any(want.get(k) != doc.get(k) for k in LAYOUT_FIELDS):
            return None
    doc = {k: v for k, v in doc.items() if k != "attributes"}
    doc["dimension_names"] = list(dimension_names)
    prefix = f"{source.path}/"
    entries = [n for n in source.store.archive.names(prefix) if n != prefix + "zarr.json"]
    return Copy(source, json.dumps(doc, indent=2).encode(), entries)


class _EntryCopy(NamedTuple):
    """One entry to copy: its reserved place in the new archive, and where it comes from."""

    slot: Reservation
    archive: Any  # the source's ZipArchive
    name: str  # the entry's name in the source
    span: tuple[int, int, int] | None  # (data offset, size, CRC-32) of a STORED local entry


class Copier:
    """Copies arrays into a writer on a thread of its own, while the caller encodes the rest.

    ``tick(n)`` is the caller's progress; it asks :meth:`collect` for the entries copied.

    Entering reserves the place of every entry to copy, in order, in the caller's thread (a
    reservation is quick, and once taken, no open entry of the caller's can hold the copy
    up); the thread then fills them.  Leaving waits for it and raises what it raised; on an
    error in the caller's block, the thread stops at its next entry and what it did not fill
    is dropped.
    """

    def __init__(self, writer: OzxWriter, copies: list[tuple[Copy, str]], *,
                 tick: Callable[[int], None], cancelled: Callable[[], bool]):
        self.writer, self.copies, self.tick, self.cancelled = writer, copies, tick, cancelled
        self._jobs: list[_EntryCopy] = []
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self._copied = self._reported = 0

    def __enter__(self) -> Copier:
        for copy, target in self.copies:
            prefix = f"{copy.source.path}/"
            for name in copy.entries:
                span = None
                archive = copy.archive
                if archive.source.fileno() is not None:  # a local file: copied in the kernel
                    span = archive.stored_span(name)
                size = span[1] if span is not None else archive.size(name)
                new = f"{target}/{name[len(prefix):]}"
                self._jobs.append(_EntryCopy(self.writer.reserve(new, size), archive, name, span))
        if self._jobs:
            self._thread = threading.Thread(target=self._run, name="ozx-copy", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for i, job in enumerate(self._jobs):
                if self._stop or self.cancelled():
                    return
                if job.span is not None:
                    offset, _, crc = job.span
                    job.slot.copy(job.archive.source.fileno(), offset, crc)
                else:
                    job.slot.write(job.archive.read(job.name))  # inflated and CRC-checked
                self._copied = i + 1
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._error = e

    def collect(self) -> int:
        """Entries copied since the last call (progress is reported from the caller's thread:
        napari's progress bar is a Qt object)."""
        done = self._copied
        new, self._reported = done - self._reported, done
        return new

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._stop = True
        if self._thread is not None:
            self._thread.join()
        self.tick(0)  # the caller's progress takes in what was copied last
        for job in self._jobs:
            job.slot.drop()  # those not filled (an error, a cancel); no-op for the rest
        if exc_type is None:
            if self._error is not None:
                raise self._error
            if self.cancelled():
                raise WriteCancelled("cancelled")


def source_label_values(source: Any) -> np.ndarray | None:
    """The label values the source's label image lists (``image-label`` colours and
    properties), which the copy keeps; None when it lists none."""
    import zarr

    parent = source.path.rsplit("/", 1)[0] if "/" in source.path else ""
    try:
        group = zarr.open_group(source.store, path=parent, mode="r")
        ome = group.attrs.asdict().get("ome")
    except Exception:  # no readable group above the array: it lists no values
        return None
    label = ome.get("image-label") if isinstance(ome, dict) else None
    if not isinstance(label, dict):
        return None
    values = set()
    for key in ("colors", "properties"):
        items = label.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and "label-value" in item:
                try:
                    values.add(int(item["label-value"]))
                except (TypeError, ValueError):
                    continue
    return np.array(sorted(values), dtype=np.int64) if values else None
