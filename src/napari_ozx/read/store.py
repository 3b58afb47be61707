"""A read-only zarr v3 store over a ZIP archive (RFC-9 ``.ozx`` or any Zarr-in-ZIP)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import zarr
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from ..zip import ByteSource, ZipArchive, is_metadata_name
from ..zip.remote import is_url

__all__ = ["KeyedBytesStore", "OzxStore", "open_ozx", "as_buffer", "byte_request_bounds"]

# Reads smaller than this are served on the event loop; larger ones in a worker thread, so
# that decoding and reading overlap (as zarr's LocalStore does for every read).
_INLINE_READ = 64 * 1024


def byte_request_bounds(
    byte_range: ByteRequest, size_of: Callable[[], int | None]
) -> tuple[int, int | None] | None:
    """``(start, stop)`` (slice semantics) of a zarr ByteRequest.

    ``size_of`` is called only for a suffix request; its None (no such value) gives None.
    """
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.start, byte_range.end
    if isinstance(byte_range, OffsetByteRequest):
        return byte_range.offset, None
    if isinstance(byte_range, SuffixByteRequest):
        size = size_of()
        return None if size is None else (max(0, size - byte_range.suffix), None)
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")


def as_buffer(data: bytes | None, prototype: BufferPrototype | None) -> Buffer | None:
    """What a zarr store's ``get`` answers for ``data`` (None: no such key)."""
    if data is None:
        return None
    return (prototype or default_buffer_prototype()).buffer.from_bytes(data)


class KeyedBytesStore(Store):
    """What our two zarr stores share (:class:`OzxStore` reading an archive,
    :class:`~napari_ozx.save.store.OzxWriteStore` reading back what it wrote): a value is the
    bytes :meth:`_read` finds for a key, answered as a zarr Buffer.  Only where a read runs
    differs, :meth:`_read_async`."""

    def _read(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        raise NotImplementedError

    async def _read_async(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        """Run :meth:`_read` for the event loop: here, on it (reads from memory are instant)."""
        return self._read(key, byte_range)

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return as_buffer(await self._read_async(key, byte_range), prototype)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        return list(
            await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))
        )


class OzxStore(KeyedBytesStore):
    """Read-only :class:`zarr.abc.store.Store` over the entries of a ZIP archive.

    Parameters
    ----------
    archive
        A path, a :class:`~napari_ozx.zip.ByteSource`, or an opened
        :class:`~napari_ozx.zip.ZipArchive`.
    verify_crc
        Check the CRC-32 of every entry read whole (ranges of an entry cannot be checked).
    verify_stored
        Also check a STORED entry's CRC-32 in full the first time any range of it is read
        (reads the whole entry once: for archives whose chunks carry no checksum of their own).
    """

    supports_writes = False
    supports_deletes = False
    supports_partial_writes = False
    supports_listing = True

    def __init__(
        self,
        archive: ZipArchive | ByteSource | str | os.PathLike,
        *,
        read_only: bool = True,
        verify_crc: bool = True,
        verify_stored: bool = False,
        storage_options: dict[str, Any] | None = None,
    ):
        if not read_only:
            raise ValueError("OzxStore is read-only; write archives with napari_ozx.write_ozx")
        super().__init__(read_only=True)
        if not isinstance(archive, ZipArchive):
            if is_url(archive):
                from ..zip.remote import open_remote_archive

                archive = open_remote_archive(
                    archive, storage_options, verify_crc=verify_crc
                )
            else:
                archive = ZipArchive(archive, verify_crc=verify_crc)
        if verify_stored:
            archive.verify_stored = True
        self.archive = archive
        # The archive is open (and checked) already; _is_open only records that zarr's
        # Store.open() / _ensure_open() ran, as for zarr's own stores (Store.open() would
        # otherwise refuse with "store is already open").
        self._is_open = False

    # ------------------------------------------------------------------ identity

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OzxStore) and other.archive.source == self.archive.source

    def __hash__(self) -> int:
        return hash(("OzxStore", self.archive.name))

    def __str__(self) -> str:
        return f"ozx://{self.archive.name}"

    def __repr__(self) -> str:
        return f"OzxStore({self.archive.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"archive": self.archive}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._read_only = True
        self._is_open = True
        self.archive = state["archive"]

    def with_read_only(self, read_only: bool = False) -> OzxStore:
        if not read_only:
            raise ValueError("OzxStore is read-only")
        return self

    def close(self) -> None:
        super().close()
        self.archive.close()

    # ------------------------------------------------------------------ reading

    def _read(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        archive = self.archive
        if byte_range is None:
            return archive.read(key)
        bounds = byte_request_bounds(byte_range, lambda: archive.size(key))
        return None if bounds is None else archive.read(key, *bounds)

    def _expected_size(self, key: str, byte_range: ByteRequest | None) -> int:
        if isinstance(byte_range, RangeByteRequest):
            return byte_range.end - byte_range.start
        if isinstance(byte_range, SuffixByteRequest):
            return byte_range.suffix
        loc = self.archive.locate(key)
        return 0 if loc is None else int(loc[0].uncompressed_size[loc[1]])

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        return as_buffer(self._read(key, byte_range), prototype)

    async def _read_async(self, key: str, byte_range: ByteRequest | None) -> bytes | None:
        if self._inline(key, byte_range):
            return self._read(key, byte_range)
        # Remote sources bring their own pool: one thread per request allowed in flight.
        executor = self.archive.source.executor
        return await asyncio.get_running_loop().run_in_executor(
            executor, self._read, key, byte_range
        )

    def _inline(self, key: str, byte_range: ByteRequest | None) -> bool:
        """Serve on the event loop: small reads that need no decoding of the directory."""
        if not self.archive.source.cheap_scan:
            return False  # a network round trip must not stall the event loop
        if not self.archive.is_fully_indexed:
            return is_metadata_name(key)
        return self._expected_size(key, byte_range) <= _INLINE_READ

    async def exists(self, key: str) -> bool:
        return self.archive.locate(key) is not None

    async def getsize(self, key: str) -> int:
        size = self.archive.size(key)
        if size is None:
            raise FileNotFoundError(key)
        return size

    # ------------------------------------------------------------------ writing: refused

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()

    async def delete(self, key: str) -> None:
        self._check_writable()

    # ------------------------------------------------------------------ listing

    async def list(self) -> AsyncIterator[str]:
        for name in self.archive.names():
            yield name

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for name in self.archive.names(prefix):
            yield name

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        head = f"{prefix}/" if prefix else ""
        seen: set[str] = set()
        for name in self.archive.names(head):
            child = name[len(head) :].split("/", 1)[0]
            if child and child not in seen:
                seen.add(child)
                yield child


def open_ozx(
    path: str | os.PathLike | ByteSource,
    *,
    verify_crc: bool = True,
    verify_stored: bool = False,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> zarr.Group | zarr.Array:
    """Open a zipped Zarr hierarchy (``.ozx`` or any Zarr-in-ZIP) read-only as a zarr Group.

    An archive whose root is a bare array (no group) gives that :class:`zarr.Array`; one with
    no Zarr metadata at its root raises :class:`~napari_ozx.NotOmeZarrError`.

    ``path`` may be a URL (``https://``, ``s3://``, any fsspec protocol); ``storage_options``
    then go to its client (e.g. ``{"anon": True}``, ``{"endpoint_url": ...}``,
    ``{"headers": {...}}``) - see :func:`napari_ozx.zip.remote.open_source`.
    ``verify_stored``: check each STORED entry's CRC-32 in full the first time any part of
    it is read (see :class:`OzxStore`).
    """
    store = OzxStore(path, verify_crc=verify_crc, verify_stored=verify_stored,
                     storage_options=storage_options)
    return _open_root(store, path, **kwargs)


def _open_root(store: OzxStore, path, **kwargs: Any) -> zarr.Group | zarr.Array:
    """The root node: a Group, or an Array when the root is one (a bare array zipped by
    TensorStore, say); no root metadata at all is :class:`~napari_ozx.NotOmeZarrError`."""
    from zarr.errors import NodeNotFoundError

    from ..errors import NotOmeZarrError

    try:
        return zarr.open_group(store=store, mode="r", **kwargs)
    except Exception as e:  # no root metadata, a root array, or metadata zarr cannot parse
        if _has(store, "zarr.json", ".zarray", ".zgroup", ".zattrs"):
            try:
                return zarr.open_array(store=store, mode="r", **kwargs)
            except Exception:
                pass
            raise e
        if not isinstance(e, NodeNotFoundError):
            raise
    deeper = _nested_root(store)
    hint = (f"; there is one in {deeper!r}: RFC-9 needs the OME-Zarr root at the ZIP root"
            if deeper else "")
    raise NotOmeZarrError(
        "no Zarr group or array at the root of the archive (no root zarr.json, .zgroup or "
        f".zarray){hint}", archive=_display_name(path), entry="zarr.json")


def _has(store: OzxStore, *keys: str) -> bool:
    from zarr.core.sync import sync

    return any(sync(store.exists(k)) for k in keys)


def _nested_root(store: OzxStore) -> str | None:
    """The folder of the shallowest ``zarr.json``/``.zgroup`` when the root has none."""
    from zarr.core.sync import sync

    async def first():
        best = None
        async for key in store.list():
            leaf = key.rsplit("/", 1)[-1]
            if leaf in ("zarr.json", ".zgroup") and "/" in key:
                if best is None or key.count("/") < best.count("/"):
                    best = key
        return best

    try:
        found = sync(first())
    except Exception:
        return None
    return found.rsplit("/", 1)[0] if found else None


def _display_name(path) -> str | None:
    if isinstance(path, (str, os.PathLike)):
        return os.fspath(path)
    return getattr(path, "name", None)
