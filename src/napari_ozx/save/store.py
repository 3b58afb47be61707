"""A zarr v3 :class:`~zarr.abc.store.Store` that writes straight into an RFC-9 archive.

zarr, ome-zarr-py or dask write an OME-Zarr hierarchy through it with no temporary directory:
``zarr.json`` documents are kept in memory (zarr may rewrite them after data was written) and
laid out first, in RFC-9 order, when the store is closed; chunks and shards are appended to the
archive as they arrive, from any number of threads (see :class:`~napari_ozx.zip.writer.OzxWriter`).

Closing the store commits the archive (atomic rename over the destination); leaving a ``with``
block by an exception, or calling :meth:`OzxWriteStore.abort`, leaves the destination as it was.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer

from ..read.store import KeyedBytesStore, byte_request_bounds
from ..zip.writer import OzxWriter

__all__ = ["OzxWriteStore"]

#: Values larger than this are written from a worker thread, so writes of several
#: chunks overlap (CRC and pwrite release the GIL).
_INLINE_WRITE = 64 * 1024
#: Room left in front of the data for metadata that grows after the first chunk.
DEFAULT_METADATA_RESERVE = 64 * 1024


class OzxWriteStore(KeyedBytesStore):
    """Write-once store over a new ``.ozx`` archive at ``path``.

    Parameters are those of :class:`~napari_ozx.zip.writer.OzxWriter`; or pass an open
    ``writer``.  Reading back what was written is supported (zarr reads a shard before a
    partial update), deleting drops entries from the archive's directory.
    """

    supports_writes = True
    supports_deletes = True
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        *,
        writer: OzxWriter | None = None,
        align: int = 4096,
        metadata_reserve: int = DEFAULT_METADATA_RESERVE,
        ome_version: str | None = None,
    ):
        super().__init__(read_only=False)
        if writer is None:
            if path is None:
                raise TypeError("OzxWriteStore needs a path or a writer")
            writer = OzxWriter(path, align=align, metadata_reserve=metadata_reserve,
                               ome_version=ome_version)
        self.writer = writer
        self.path = writer.path
        self._is_open = True

    # ------------------------------------------------------------------ identity

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OzxWriteStore) and other.writer is self.writer

    def __hash__(self) -> int:
        return hash(("OzxWriteStore", id(self.writer)))

    def __repr__(self) -> str:
        return f"OzxWriteStore({self.path!r})"

    def __str__(self) -> str:
        return f"ozx+write://{self.path}"

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Commit the archive (lay out metadata, write the directory, rename into place)."""
        if not self.writer.closed:
            self.writer.close()
        super().close()

    def abort(self) -> None:
        """Discard the archive; the destination stays as it was."""
        self.writer.abort()
        self._is_open = False

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # ------------------------------------------------------------------ writing

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        data = value.as_numpy_array().data  # the bytes (a memoryview), as the writer takes them
        if len(data) > _INLINE_WRITE:
            await asyncio.to_thread(self.writer.write, key, data)
        else:
            self.writer.write(key, data)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        if not self.writer.has(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        self._check_writable()
        self.writer.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        self._check_writable()
        prefix = prefix.rstrip("/")
        for name in self.writer.names():
            if not prefix or name == prefix or name.startswith(prefix + "/"):
                self.writer.delete(name)

    # ------------------------------------------------------------------ reading back

    def _read(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        data = self.writer.get(key)
        if data is None or byte_range is None:
            return data
        size = len(data)
        bounds = byte_request_bounds(byte_range, lambda: size)
        assert bounds is not None  # None only for a suffix of a value of unknown size
        start, stop = bounds
        return data[start:stop]

    async def exists(self, key: str) -> bool:
        return self.writer.has(key)

    # ------------------------------------------------------------------ listing

    async def list(self) -> AsyncIterator[str]:
        for name in self.writer.names():
            yield name

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for name in self.writer.names():
            if name.startswith(prefix):
                yield name

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        head = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        for name in self.writer.names():
            if name.startswith(head):
                child = name[len(head) :].split("/", 1)[0]
                if child and child not in seen:
                    seen.add(child)
                    yield child
