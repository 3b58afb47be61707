"""A streaming writer of RFC-9 ZIP archives (``.ozx``).

What it writes:

* every entry STORED, its CRC-32 computed while the data streams through (in blocks);
* full ZIP64: a ZIP64 extra field on every local and central header, a ZIP64 end record and
  locator whatever the size;
* RFC-9 order: the root ``zarr.json`` first in the file and in the central directory, the other
  metadata entries after it breadth-first (depth, then name), then every other entry by name;
  the comment ``{"ome":{"version":...,"zipFile":{"centralDirectory":{"jsonFirst":true}}}}``;
* each name once: metadata is held in memory (it is small) until it is laid out, so zarr may
  rewrite a ``zarr.json`` as often as it likes; a data entry written twice keeps only its
  last copy in the central directory;
* the payload of every data entry aligned to ``align`` bytes (4096 by default), with the
  padding in an extra field of the local header (id ``0xD935``, as Android's zipalign);
* atomically (:mod:`.destination`): into a temporary file beside the destination, fsync'ed
  and renamed over it by :meth:`OzxWriter.close`; :meth:`OzxWriter.abort` (and any exception
  or KeyboardInterrupt inside ``with``) removes the temporary file and leaves the destination
  untouched.

Layout.  Metadata entries come first in the file.  When the first data entry arrives, the
metadata known so far is written at offset 0 and ``metadata_reserve`` spare bytes are left
after it.  If metadata changes afterwards, :meth:`close` lays it out again in that region,
filling what is left with padding extra fields; if it no longer fits, the data region is moved
(in-kernel copy, by a multiple of ``align`` so payloads stay aligned) behind the new metadata.

Data entries are appended by any number of threads: the lock is held only while an entry's
byte range is reserved; CRC and the writes of different entries run in parallel (``pwrite``).
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
import sys
import threading
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import NotOmeZarrError, OzxError
from . import records
from ._io import (
    FileEndedError,
    crc32,
    os_reason,
    pread_exactly,
    pwrite_all,
)
from .comment import ome_version_of, rfc9_comment
from .destination import Destination
from .names import check_writable_name, is_metadata_name

__all__ = [
    "OzxWriter", "EntryStream", "rfc9_comment", "rfc9_sort_key", "PADDING_EXTRA_ID",
    "os_reason",  # (re-exported: callers outside zip/ name file-system errors with it)
]

#: Extra-field id of the alignment padding (the one Android's zipalign uses).
PADDING_EXTRA_ID = 0xD935
_PAD_MIN = records.EXTRA_HEADER.size + 2  # id, length, u16 alignment
_LOCAL_ZIP64 = records.EXTRA_HEADER.size + 16  # local ZIP64 extra: sizes only
_CENTRAL_ZIP64 = records.EXTRA_HEADER.size + 24  # central: sizes and header offset
_MAX_PAD = records.U16_MAX - _LOCAL_ZIP64  # largest padding field one local header can carry
COPY_BLOCK = 4 << 20
#: Block size of streamed copies: small enough that reading, CRC and writing one block stay
#: in the CPU cache (4 MiB blocks measured 1.5x slower on 3 GiB).
STREAM_BLOCK = 256 << 10
_SMALL = 64 * 1024  # entries up to this size go out in one write with their header
_CD_BATCH = 32768  # central-directory headers built per batch
#: Start the disk writing the archive every this many bytes, so the disk works while data is
#: still being copied and the final fsync has little left to do.
WRITEBACK_EVERY = 32 << 20
_ZIP64_CENTRAL_DTYPE = np.dtype(
    [("id", "<u2"), ("length", "<u2"), ("uncompressed_size", "<u8"),
     ("compressed_size", "<u8"), ("offset", "<u8")]
)


def rfc9_sort_key(name: str) -> tuple:
    """Central-directory order of RFC-9: root ``zarr.json``, other metadata breadth-first
    (depth, then name), then the rest by name."""
    if name == "zarr.json":
        return (0, 0, name)
    if is_metadata_name(name):
        return (1, name.count("/"), name)
    return (2, 0, name)


def _load_sync_file_range():
    """Linux ``sync_file_range(2)`` through ctypes, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        f = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _padding_field(length: int, align: int) -> bytes:
    """A padding extra field of exactly ``length`` bytes (0, or at least 6)."""
    if length == 0:
        return b""
    assert _PAD_MIN <= length <= _MAX_PAD, length
    body = struct.pack("<H", min(align, records.U16_MAX)) + b"\0" * (length - _PAD_MIN)
    return records.EXTRA_HEADER.pack(PADDING_EXTRA_ID, len(body)) + body


def _local_size(name: bytes) -> int:
    return records.LOCAL.size + len(name) + _LOCAL_ZIP64


def _dos_now() -> tuple[int, int]:
    t = time.localtime()
    if t.tm_year < 1980:
        return records.dos_datetime()
    return records.dos_datetime(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


@dataclass
class _Entry:
    name: bytes
    offset: int  #: of the local header
    size: int
    crc: int


class OzxWriter:
    """Write an RFC-9 archive at ``path``.

    Use as a context manager, or call :meth:`close` (commit) / :meth:`abort` yourself::

        with OzxWriter("image.ozx") as w:
            w.set_metadata("zarr.json", root_json)
            w.set_metadata("0/zarr.json", array_json)
            w.write("0/c/0/0", shard_bytes)       # or w.write_stream(name, blocks)

    Parameters
    ----------
    align
        Payload alignment of data entries (a power of two up to 32768; 1 disables it).
    metadata_reserve
        Spare bytes left after the metadata when the first data entry is written, so
        metadata that grows later (zarr rewrites ``zarr.json``) still fits in front.
    ome_version
        Version written into the comment; by default the root metadata's
        ``attributes.ome.version`` (``"0.5"`` when it has none).
    require_root
        Refuse to commit an archive without a root ``zarr.json`` (RFC-9 requires one).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        align: int = 4096,
        metadata_reserve: int = 0,
        ome_version: str | None = None,
        require_root: bool = True,
        date_time: tuple[int, int] | None = None,
    ):
        if align < 1 or align & (align - 1) or align > 32768:
            raise ValueError(f"align must be a power of two between 1 and 32768, not {align}")
        self.path = os.fspath(path)
        self.align = align
        self.metadata_reserve = max(0, int(metadata_reserve))
        self.ome_version = ome_version
        self.require_root = require_root
        self._mtime, self._mdate = date_time or _dos_now()
        self._lock = threading.Lock()
        self._tail_free = threading.Condition(self._lock)
        self._open: EntryStream | None = None  # an entry of unknown size holds the tail
        self._metadata: dict[str, bytes] = {}
        # Data entries, compactly (millions of small chunks must not cost an object each):
        # name -> row of the columns below.  A rewritten name points at its new row; the old
        # row's bytes stay in the file, unreferenced.
        self._rows: dict[str, int] = {}
        self._offset = array("q")  # of the local header
        self._size = array("q")
        self._crc = array("q")  # -1 while being written
        self._pending = 0  # data entries reserved but not yet written
        self._data_start: int | None = None  # where the data region begins (None: not yet)
        self._laid_out: dict[str, bytes] | None = None  # metadata as written at offset 0
        self._end = 0  # end of the data region
        self._unflushed = 0  # bytes written since the disk was last asked to start writing
        self._closed = False
        # The file the archive is written into until close() moves it over the destination
        # (unnamed where the file system allows: a killed save leaves nothing behind).
        self._dest = Destination(self.path, f"{id(self):x}")
        self._fd = self._dest.fd

    # ------------------------------------------------------------------ entries

    @property
    def temporary_path(self) -> str:
        """A path this host's processes can open the archive being written by."""
        return self._dest.temporary_path

    def set_metadata(self, name: str, data: bytes) -> None:
        """Set (or replace) a metadata entry (``zarr.json``); it is laid out at :meth:`close`
        or when the first data entry is written."""
        self._check_open()
        check_writable_name(name, self.path)
        if not is_metadata_name(name):
            raise ValueError(f"{name!r} is not a metadata entry")
        with self._lock:
            if name in self._rows:
                raise OzxError("written as data, then as metadata", archive=self.path, entry=name)
            self._metadata[name] = bytes(data)

    def get(self, name: str) -> bytes | None:
        """The bytes of an entry written so far (metadata from memory, data from the file)."""
        with self._lock:
            if name in self._metadata:
                return self._metadata[name]
        span = self.data_span(name)
        if span is None:
            return None
        start, size = span
        return self._read_back(start, size, name)

    def _read_back(self, offset: int, size: int, name: str | None = None) -> bytes:
        """Bytes this writer has already written, read back from its own file (whole: a file
        that ends first was cut under us, which no caller may take for data)."""
        try:
            return pread_exactly(self._fd, offset, size)
        except FileEndedError as e:
            raise OzxError(f"the archive being written ended at byte {e.at} of {offset + size}",
                           archive=self.path, entry=name) from None

    def data_span(self, name: str) -> tuple[int, int] | None:
        """``(offset, size)`` of a finished data entry's bytes in :attr:`temporary_path`, or
        None.  Valid until :meth:`close` (which may move the data region)."""
        with self._lock:
            row = self._rows.get(name)
            if row is None or self._crc[row] < 0:
                return None
            offset, size = self._offset[row], self._size[row]
        hdr = self._read_back(offset, records.LOCAL.size, name)
        nlen, elen = struct.unpack_from("<HH", hdr, 26)
        return offset + records.LOCAL.size + nlen + elen, size

    def has(self, name: str) -> bool:
        """Whether an entry of that name has been written (completely)."""
        with self._lock:
            if name in self._metadata:
                return True
            row = self._rows.get(name)
            return row is not None and self._crc[row] >= 0

    def names(self) -> list[str]:
        with self._lock:
            crc = self._crc
            return list(self._metadata) + [n for n, r in self._rows.items() if crc[r] >= 0]

    def delete(self, name: str) -> bool:
        """Forget an entry: metadata is dropped; a data entry leaves the central directory
        (its bytes stay in the file, unreferenced).  Returns whether it existed."""
        with self._lock:
            if self._metadata.pop(name, None) is not None:
                return True
            return self._rows.pop(name, None) is not None

    def write(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Append a whole data entry (metadata names go to :meth:`set_metadata`).

        Thread-safe; only the reservation of the entry's byte range is serialised.
        """
        if is_metadata_name(name):
            self.set_metadata(name, bytes(data))
            return
        view = memoryview(data).cast("B")
        self.reserve(name, len(view)).write(view)

    def write_stream(self, name: str, blocks: Iterable[bytes | bytearray | memoryview],
                     size: int) -> None:
        """Append a data entry of ``size`` bytes given as blocks (CRC computed as they pass).

        The blocks must add up to exactly ``size`` bytes.
        """
        if is_metadata_name(name):
            self.set_metadata(name, b"".join(blocks))
            return
        key = name.encode("utf-8")
        row, header_pos, padding = self._reserve(name, key, size)
        try:
            header_len = _local_size(key) + len(padding)
            pos = header_pos + header_len
            crc = 0
            got = 0
            for block in blocks:
                if got + len(block) > size:
                    raise OzxError(f"more than the announced {size} bytes", archive=self.path,
                                   entry=name)
                crc = crc32(block, crc)
                pwrite_all(self._fd, block, pos)
                pos += len(block)
                got += len(block)
                self._written(len(block))
            if got != size:
                raise OzxError(f"{got} bytes instead of the announced {size} (did the source "
                               "change while it was read?)", archive=self.path, entry=name)
            pwrite_all(self._fd, self._local_header(key, size, crc, padding), header_pos)
        except BaseException:
            self._release(name, row, None)
            raise
        self._release(name, row, crc)

    def copy_entry(self, name: str, fd: int, offset: int, size: int, crc: int) -> None:
        """Append a data entry whose ``size`` bytes are at ``offset`` of the open file ``fd``
        and whose CRC-32 is known (another archive's STORED entry): copied by the kernel
        (``copy_file_range``), never through Python.  The CRC is taken as given, so damage in
        the source stays detectable in the copy."""
        if is_metadata_name(name):
            try:
                self.set_metadata(name, pread_exactly(fd, offset, size))
            except FileEndedError as e:
                raise OzxError(f"the source of the copy ended at byte {e.at} of {offset + size}",
                               archive=self.path, entry=name) from None
            return
        self.reserve(name, size).copy(fd, offset, crc)

    def reserve(self, name: str, size: int) -> Reservation:
        """Take the place of a data entry of ``size`` bytes now, in archive order, to be filled
        later from any thread (:meth:`Reservation.copy`, :meth:`Reservation.write`): entries
        written meanwhile go after it, and the archive cannot be committed until it is filled
        or dropped.  Lets a save copy stored entries while it encodes others."""
        if is_metadata_name(name):
            raise ValueError(f"{name!r} is a metadata entry")
        key = name.encode("utf-8")
        row, header_pos, padding = self._reserve(name, key, size)
        return Reservation(self, name, key, row, header_pos, padding, size)

    def open_entry(self, name: str) -> EntryStream:
        """Start a data entry whose size is not known yet: :meth:`EntryStream.append` writes
        its bytes at once (nothing is held in memory), :meth:`EntryStream.commit` writes its
        header.  The entry holds the end of the archive until it is committed or dropped, so
        entries written meanwhile from other threads wait for it."""
        if is_metadata_name(name):
            raise ValueError(f"{name!r} is a metadata entry")
        key = name.encode("utf-8")
        row, header_pos, padding = self._reserve(name, key, 0, open_ended=True)
        assert self._open is not None
        return self._open

    def _close_entry(self, stream: EntryStream, ok: bool) -> None:
        with self._lock:
            if ok:
                self._size[stream.row] = stream.size
                self._end = stream.data_pos + stream.size
            else:
                self._end = stream.header_pos
            self._open = None
            self._tail_free.notify_all()
        self._release(stream.name, stream.row, stream.crc if ok else None)

    def write_file(self, name: str, path: str | os.PathLike, *, block: int = STREAM_BLOCK,
                   progress=None) -> int:
        """Append the file at ``path`` as entry ``name``, streaming it; returns its size."""
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if is_metadata_name(name):
                self.set_metadata(name, f.read())
                if progress is not None:
                    progress(size)
                return size
            buf = bytearray(min(block, max(size, 1)))
            view = memoryview(buf)

            def blocks():
                while True:
                    n = f.readinto(buf)
                    if not n:
                        return
                    if progress is not None:
                        progress(n)
                    yield view[:n]

            self.write_stream(name, blocks(), size)
        return size

    # ------------------------------------------------------------------ layout

    def _reserve(self, name: str, key: bytes, size: int, open_ended: bool = False
                 ) -> tuple[int, int, bytes]:
        """Reserve the byte range of a new data entry: (row, local header offset, padding).
        ``open_ended``: the entry's size is not known; it holds the end of the archive (as
        :attr:`_open`) until :meth:`_close_entry`."""
        self._check_open()
        check_writable_name(name, self.path)
        with self._lock:
            if name in self._metadata:
                raise OzxError("written as metadata, then as data", archive=self.path, entry=name)
            while self._open is not None:
                if self._open.thread == threading.get_ident():
                    raise OzxError(f"{self._open.name!r} is still open: finish it before "
                                   "writing another entry", archive=self.path, entry=name)
                self._tail_free.wait()
            self._check_open()
            if self._data_start is None:
                self._lay_out_metadata_first()
            header_pos = self._end
            base = header_pos + _local_size(key)
            pad = (-base) % self.align
            if 0 < pad < _PAD_MIN:
                pad += self.align
            while pad > _MAX_PAD:  # only with align > 64 KiB, which __init__ refuses
                pad -= self.align
            padding = _padding_field(pad, self.align)
            row = len(self._offset)
            self._offset.append(header_pos)
            self._size.append(size)
            self._crc.append(-1)
            self._end = base + pad + size
            self._pending += 1
            # A rewrite replaces the earlier entry in the central directory.
            self._rows[name] = row
            if open_ended:
                self._open = EntryStream(self, name, key, row, header_pos, padding)
        return row, header_pos, padding

    def _written(self, n: int) -> None:
        """Count bytes written; every :data:`WRITEBACK_EVERY` start the disk writing them
        (non-blocking; unsynchronised counting is fine, it only paces a hint)."""
        self._unflushed += n
        if self._unflushed >= WRITEBACK_EVERY and _sync_file_range is not None:
            self._unflushed = 0
            _sync_file_range(self._fd, 0, 0, _SYNC_FILE_RANGE_WRITE)

    def _release(self, name: str, row: int, crc: int | None) -> None:
        """The entry of ``row`` is written (``crc``) or failed (None)."""
        with self._lock:
            self._pending -= 1
            if crc is not None:
                self._crc[row] = crc
            elif self._rows.get(name) == row:
                del self._rows[name]

    def _lay_out_metadata_first(self) -> None:
        """Write the metadata known now at offset 0 and start the data region after it."""
        meta = dict(self._metadata)
        blob, _ = self._metadata_region(meta, 0)
        pwrite_all(self._fd, blob, 0)
        self._laid_out = meta
        self._data_start = len(blob) + self.metadata_reserve
        self._end = self._data_start
        if self.metadata_reserve:
            self._fill(len(blob), self.metadata_reserve)

    def _fill(self, pos: int, length: int) -> None:
        """Zeros over a reserved gap (it will be overwritten at close)."""
        zero = bytes(min(length, COPY_BLOCK))
        while length:
            n = min(length, len(zero))
            pwrite_all(self._fd, zero[:n], pos)
            pos += n
            length -= n

    def _ordered_metadata(self, meta: dict[str, bytes]) -> list[str]:
        return sorted(meta, key=rfc9_sort_key)

    def _metadata_region(self, meta: dict[str, bytes], gap: int) -> tuple[bytes, list[_Entry]]:
        """Local headers and data of the metadata entries, padded by ``gap`` extra bytes."""
        names = self._ordered_metadata(meta)
        pads = _split_padding(gap, len(names))
        if pads is None:
            raise _DoesNotFit
        parts: list[bytes] = []
        entries = []
        pos = 0
        for name, pad in zip(names, pads, strict=True):
            data = meta[name]
            key = name.encode("utf-8")
            crc = crc32(data)
            header = self._local_header(key, len(data), crc, _padding_field(pad, self.align))
            entries.append(_Entry(key, pos, len(data), crc))
            parts += [header, data]
            pos += len(header) + len(data)
        return b"".join(parts), entries

    def _local_header(self, key: bytes, size: int, crc: int, padding: bytes) -> bytes:
        extra = records.zip64_extra(size, size) + padding
        return records.pack_local_header(
            key, method=records.METHOD_STORED, crc32=crc, compressed_size=records.U32_MAX,
            uncompressed_size=records.U32_MAX, extra=extra, mtime=self._mtime, mdate=self._mdate,
        )

    def _central_headers(self, keys: list[bytes], offsets: np.ndarray, sizes: np.ndarray,
                         crcs: np.ndarray) -> bytes:
        """The central-directory headers of many data entries at once (numpy, no object per
        entry); byte for byte what :meth:`_central_header` gives for each."""
        n = len(keys)
        lens = np.fromiter(map(len, keys), dtype=np.int64, count=n)
        rec = records.CENTRAL.size + lens + _CENTRAL_ZIP64
        starts = np.cumsum(rec) - rec
        out = np.empty(int(rec.sum()), dtype=np.uint8)
        hdr = np.zeros(n, dtype=records.CENTRAL_DTYPE)
        hdr["signature"] = int.from_bytes(records.SIG_CENTRAL, "little")
        hdr["version_made_by"] = (3 << 8) | records.VERSION_ZIP64
        hdr["version_needed"] = records.VERSION_ZIP64
        hdr["flags"] = records.FLAG_UTF8
        hdr["method"] = records.METHOD_STORED
        hdr["mtime"] = self._mtime
        hdr["mdate"] = self._mdate
        hdr["crc32"] = crcs
        hdr["compressed_size"] = records.U32_MAX
        hdr["uncompressed_size"] = records.U32_MAX
        hdr["name_length"] = lens
        hdr["extra_length"] = _CENTRAL_ZIP64
        hdr["external_attr"] = 0o100644 << 16
        hdr["local_header_offset"] = records.U32_MAX
        out[starts[:, None] + np.arange(records.CENTRAL.size)] = hdr.view(np.uint8).reshape(n, -1)
        blob = np.frombuffer(b"".join(keys), dtype=np.uint8)
        name_starts = np.cumsum(lens) - lens
        name_pos = np.repeat(starts + records.CENTRAL.size - name_starts, lens)
        out[name_pos + np.arange(len(blob))] = blob
        z64 = np.zeros(n, dtype=_ZIP64_CENTRAL_DTYPE)
        z64["id"] = records.ZIP64_EXTRA_ID
        z64["length"] = _CENTRAL_ZIP64 - records.EXTRA_HEADER.size
        z64["uncompressed_size"] = sizes
        z64["compressed_size"] = sizes
        z64["offset"] = offsets
        where = starts + records.CENTRAL.size + lens
        out[where[:, None] + np.arange(_CENTRAL_ZIP64)] = z64.view(np.uint8).reshape(n, -1)
        return out.tobytes()

    def _central_header(self, e: _Entry) -> bytes:
        return records.pack_central_header(
            e.name, method=records.METHOD_STORED, crc32=e.crc, compressed_size=records.U32_MAX,
            uncompressed_size=records.U32_MAX, local_header_offset=records.U32_MAX,
            extra=records.zip64_extra(e.size, e.size, e.offset), mtime=self._mtime,
            mdate=self._mdate,
        )

    # ------------------------------------------------------------------ finishing

    def close(self) -> str:
        """Finish the archive and move it over the destination; returns the path."""
        if self._closed:
            return self.path
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        return self.path

    def _finish(self) -> None:
        with self._lock:
            if self._pending:
                raise OzxError(f"closed while {self._pending} entries are still being written",
                               archive=self.path)
            if self.require_root and "zarr.json" not in self._metadata:
                raise NotOmeZarrError("no root zarr.json was written; an RFC-9 archive needs one",
                                      archive=self.path)
            meta = dict(self._metadata)
            meta_entries = self._place_metadata(meta)
            version = self.ome_version or ome_version_of(meta.get("zarr.json")) or "0.5"
            cd_offset = self._end
            pos = cd_offset
            batch: list[bytes] = [self._central_header(e) for e in meta_entries]
            pos += pwrite_all(self._fd, b"".join(batch), pos)
            offset = np.frombuffer(self._offset, dtype=np.int64)
            size = np.frombuffer(self._size, dtype=np.int64)
            crc = np.frombuffer(self._crc, dtype=np.int64)
            names = sorted(self._rows)  # data entries by name, after the metadata
            for lo in range(0, len(names), _CD_BATCH):
                part = names[lo : lo + _CD_BATCH]
                rows = np.fromiter((self._rows[nm] for nm in part), dtype=np.int64,
                                   count=len(part))
                pos += pwrite_all(self._fd, self._central_headers(
                    [nm.encode("utf-8") for nm in part], offset[rows], size[rows], crc[rows]
                ), pos)
            n_entries = len(meta_entries) + len(self._rows)
            tail = records.pack_end_records(entries=n_entries, cd_offset=cd_offset,
                                            cd_size=pos - cd_offset, comment=rfc9_comment(version),
                                      zip64=True)
            pos += pwrite_all(self._fd, tail, pos)
            self._dest.commit(pos)
            self._fd = -1
            self._closed = True

    def _place_metadata(self, meta: dict[str, bytes]) -> list[_Entry]:
        """Write the final metadata in front of the data region (moving the region when the
        metadata no longer fits in front of it, by a multiple of the alignment)."""
        plain, _ = self._metadata_region(meta, 0)
        size = len(plain)
        if self._data_start is None:  # no data entry at all
            self._data_start = self._end = size
        start = self._data_start
        step = max(self.align, 1)
        # Candidates for the data start: ``start`` itself, then start + k * step from the
        # first one past the metadata (padding fills any gap between the two).
        k = -((start - size) // step)  # smallest k with start + k * step >= size
        candidates = itertools.chain(
            [start] if start >= size else [], (start + (k + i) * step for i in range(1 << 20))
        )
        for new_start in candidates:
            try:
                blob, entries = self._metadata_region(meta, new_start - size)
            except _DoesNotFit:
                continue
            if new_start != start:
                self._move_data(start, new_start)
            pwrite_all(self._fd, blob, 0)
            return entries
        raise OzxError("cannot lay out the metadata", archive=self.path)  # pragma: no cover

    def _move_data(self, old: int, new: int) -> None:
        shift = new - old
        length = self._end - old
        # Overlapping regions: copy from the end when moving up, from the start when down.
        offsets = range(0, length, COPY_BLOCK)
        for pos in reversed(offsets) if shift > 0 else offsets:
            n = min(COPY_BLOCK, length - pos)
            pwrite_all(self._fd, self._read_back(old + pos, n), new + pos)
        headers = self._offset
        for row in range(len(headers)):
            headers[row] += shift
        self._end += shift
        self._data_start = new

    def abort(self) -> None:
        """Drop everything written: remove the temporary file; the destination is untouched."""
        if self._closed:
            return
        self._closed = True
        with self._lock:  # nobody waits for an open entry of an aborted archive
            self._open = None
            self._tail_free.notify_all()
        self._dest.discard()
        self._fd = -1

    def _check_open(self) -> None:
        if self._closed:
            raise OzxError("the archive writer is closed", archive=self.path)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> OzxWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        # Never leave a temporary file behind, even when the writer is simply dropped.
        try:
            if not self._closed:
                self.abort()
        except Exception:
            pass


class Reservation:
    """The place of one data entry of known size (:meth:`OzxWriter.reserve`), filled once."""

    def __init__(self, writer: OzxWriter, name: str, key: bytes, row: int, header_pos: int,
                 padding: bytes, size: int):
        self.writer, self.name, self.key, self.row = writer, name, key, row
        self.header_pos, self.padding, self.size = header_pos, padding, size
        self._done = False

    def _fill(self, crc, *, body=None, payload=None) -> None:
        """Write the local header (CRC-32 ``crc()``), then the data: ``payload`` (bytes; with
        the header in one system call when small) or ``body(data offset)``."""
        if self._done:
            raise OzxError("reserved entry filled twice", archive=self.writer.path,
                           entry=self.name)
        self._done = True
        w = self.writer
        try:
            value = crc()
            header = w._local_header(self.key, self.size, value, self.padding)
            if payload is not None and len(payload) <= _SMALL:
                pwrite_all(w._fd, header + payload, self.header_pos)
            else:
                pwrite_all(w._fd, header, self.header_pos)
                pos = self.header_pos + len(header)
                if payload is not None:
                    pwrite_all(w._fd, payload, pos)
                else:
                    body(pos)
        except BaseException:
            w._release(self.name, self.row, None)
            raise
        w._release(self.name, self.row, value)
        w._written(self.size)

    def copy(self, fd: int, offset: int, crc: int) -> None:
        """Fill it with the ``size`` bytes at ``offset`` of ``fd`` whose CRC-32 is ``crc``."""
        self._fill(lambda: crc, body=lambda pos: _copy_range(
            fd, offset, self.writer._fd, pos, self.size, self.writer.path, self.name))

    def write(self, data) -> None:
        """Fill it with ``data`` (exactly ``size`` bytes)."""
        view = memoryview(data).cast("B")
        if len(view) != self.size:
            self.drop()
            raise OzxError(f"{len(view)} bytes for an entry reserved for {self.size}",
                           archive=self.writer.path, entry=self.name)
        self._fill(lambda: crc32(view), payload=view)

    def drop(self) -> None:
        """Give it up unfilled (the save failed): it leaves the directory."""
        if not self._done:
            self._done = True
            self.writer._release(self.name, self.row, None)


class EntryStream:
    """A data entry being appended (see :meth:`OzxWriter.open_entry`)."""

    def __init__(self, writer: OzxWriter, name: str, key: bytes, row: int, header_pos: int,
                 padding: bytes):
        self.writer, self.name, self.key, self.row = writer, name, key, row
        self.header_pos, self.padding = header_pos, padding
        self.data_pos = header_pos + _local_size(key) + len(padding)
        self.size = 0
        self.crc = 0
        self.thread = threading.get_ident()
        self.done = False

    def append(self, data) -> int:
        """Write ``data`` at the end of the entry; returns its offset inside the entry."""
        if self.done:
            raise OzxError("the entry is finished", archive=self.writer.path, entry=self.name)
        view = memoryview(data).cast("B")
        at = self.size
        try:
            self.crc = crc32(view, self.crc)
            pwrite_all(self.writer._fd, view, self.data_pos + at)
        except BaseException:
            self.drop()
            raise
        self.size += len(view)
        self.writer._written(len(view))
        return at

    def commit(self) -> None:
        """Write the header: the entry is complete and the archive's end free again."""
        if self.done:
            return
        w = self.writer
        try:
            pwrite_all(w._fd, w._local_header(self.key, self.size, self.crc, self.padding),
                        self.header_pos)
        except BaseException:
            self.drop()
            raise
        self.done = True
        w._close_entry(self, ok=True)

    def drop(self) -> None:
        """Forget the entry (its bytes are overwritten by what comes next)."""
        if not self.done:
            self.done = True
            self.writer._close_entry(self, ok=False)


class _DoesNotFit(Exception):
    pass


def _split_padding(gap: int, n: int) -> list[int] | None:
    """Padding per local header (each 0 or 6.._MAX_PAD) adding up to ``gap``, or None."""
    pads = [0] * n
    rest = gap
    for i in range(n):
        if rest == 0:
            break
        take = min(rest, _MAX_PAD)
        if 0 < rest - take < _PAD_MIN:
            take -= _PAD_MIN
        if take < _PAD_MIN:
            return None
        pads[i] = take
        rest -= take
    return pads if rest == 0 else None


def _copy_range(src: int, src_pos: int, dst: int, dst_pos: int, size: int, archive: str,
                entry: str) -> None:
    """Copy ``size`` bytes between files: ``copy_file_range`` (no copy through user space;
    on file systems that share extents, no copy at all), else ``pread``/``pwrite`` blocks."""
    left = size
    use_kernel = hasattr(os, "copy_file_range")
    while left:
        n = 0
        if use_kernel:
            try:
                n = os.copy_file_range(src, dst, min(left, 1 << 30), src_pos, dst_pos)
            except OSError as e:
                if e.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    use_kernel = False
                    continue
                raise
        else:
            block = os.pread(src, min(left, STREAM_BLOCK), src_pos)
            n = len(block)
            if n:
                pwrite_all(dst, block, dst_pos)
        if n == 0:
            raise OzxError(f"source ended {left} bytes early while copying", archive=archive,
                           entry=entry)
        src_pos, dst_pos, left = src_pos + n, dst_pos + n, left - n
