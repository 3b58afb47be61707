"""An opened ZIP archive: drives the sans-IO parsers with a byte source and serves entries.

Opening reads the tail (end records and comment).  With an RFC-9 ``jsonFirst`` comment only the
metadata prefix of the central directory is decoded; the rest is decoded the first time an entry
outside that prefix is asked for.  A metadata name that is not in the prefix is answered only
after making sure no such entry follows (a scan of the remaining central-directory bytes on local
disk, the full index elsewhere): an archive that claims ``jsonFirst`` wrongly still shows all of
its entries.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import (
    CorruptArchiveError,
    OzxConformanceWarning,
    OzxError,
    OzxWarning,
)
from . import records
from .central import PAD, parse_central_block
from .comment import OmeComment, parse_comment
from .entry import check_crc, check_readable, inflate, parse_local_header
from .eocd import read_end
from .index import IndexBuilder, ZipIndex
from .layout import DataOffsetGuesser
from .names import is_metadata_name
from .source import ByteSource, LocalFile

FIRST_BLOCK = 64 * 1024
BLOCK = 2 * 1024 * 1024


@dataclass(frozen=True)
class EntryInfo:
    name: str
    method: int
    compressed_size: int
    uncompressed_size: int
    crc32: int
    header_offset: int
    flags: int


class ZipArchive:
    """Read access to the entries of a ZIP archive.

    ``source`` is a :class:`~napari_ozx.zip.source.ByteSource` or a local path.  Reads are
    lock-free; the only lock guards the one-time decoding of the full central directory.
    """

    def __init__(
        self,
        source: ByteSource | str | os.PathLike,
        *,
        tail_size: int = records.MAX_TAIL,
        verify_crc: bool = True,
        verify_stored: bool = False,
        warn: bool = True,
    ):
        if isinstance(source, (str, os.PathLike)):
            source = LocalFile(source)
        self.source = source
        self.name = source.name
        self.verify_crc = verify_crc
        # Check a STORED entry's CRC-32 in full the first time any part of it is read (a
        # ranged read alone cannot be checked): rows already checked, by index.
        self.verify_stored = verify_stored
        self._checked: dict[int, set[int]] = {}
        self._warn_enabled = warn
        self._tail_size = tail_size
        self._lock_pid: int | None = None
        self._lock = threading.Lock()
        self._full: ZipIndex | None = None
        self._prefix: ZipIndex | None = None
        self._prefix_end = 0
        self._scan_cache: dict[str, bool] = {}
        self._guesser: DataOffsetGuesser | None = None
        self._whole_directory = False  # the full index holds every header (none skipped)
        self.stats: dict[str, int] = {}
        self.duplicates: list[str] = []
        self.unsafe_names: list[str] = []
        self.n_unsafe = 0
        self.n_directories = 0
        self.json_first_violations: list[str] = []
        try:
            self._open()
        except OzxError as e:
            raise e.with_archive(self.name) from None

    # ---------------------------------------------------------------- opening

    def _open(self) -> None:
        # The bytes read to find the end records run to the end of the file: kept as a cache.
        result, self._tail_offset, self._tail = read_end(self.source, self._tail_size)
        self.end = result
        self.comment: OmeComment = parse_comment(result.comment)
        if self.comment.problem:
            self._warn(f"{self.comment.problem}; not an RFC-9 archive comment",
                       OzxConformanceWarning)
        if self.comment.json_first:
            self._build_prefix()
        else:
            self._build_full()

    def _read(self, offset: int, length: int) -> bytes:
        t0 = offset - self._tail_offset
        if t0 >= 0 and t0 + length <= len(self._tail):
            return self._tail[t0 : t0 + length]
        return self.source.read(offset, length)

    def _warn(self, message: str, category: type[OzxWarning] = OzxWarning) -> None:
        if self._warn_enabled:
            warnings.warn(f"{self.name}: {message}", category, stacklevel=4)

    @property
    def _build_lock(self) -> threading.Lock:
        # A lock per process: one inherited through fork may be held by a thread that is gone.
        if self._lock_pid != os.getpid():
            self._lock = threading.Lock()
            self._lock_pid = os.getpid()
        return self._lock

    def _decode(self, *, start: int, builder: IndexBuilder, stop_after_metadata: bool,
                first_block: int) -> int:
        """Decode central-directory headers from ``start`` into ``builder``; returns the end."""
        end = self.end
        pos = start
        block = first_block
        scratch: bytearray | None = None
        buf: bytes | bytearray
        while pos < end.cd_size:
            length = min(block, end.cd_size - pos)
            t0 = end.cd_offset + pos - self._tail_offset
            if t0 >= 0:
                buf = self._tail[t0 : t0 + length + PAD]
            else:
                # One reused buffer: fresh pages cost more than the parsing on this machine.
                if scratch is None or len(scratch) < length + PAD:
                    scratch = bytearray(max(length, min(BLOCK, end.cd_size)) + PAD)
                self.source.read_into(end.cd_offset + pos, memoryview(scratch)[:length])
                buf = scratch
            final = pos + length == end.cd_size
            blk = parse_central_block(
                buf,
                length=length,
                first_ordinal=builder.headers,
                final=final,
                shift=end.shift,
                stop_after_metadata=stop_after_metadata,
            )
            builder.add(blk)
            pos += blk.consumed
            self.stats["cd_blocks"] = self.stats.get("cd_blocks", 0) + 1
            if blk.stopped:
                break
            if blk.consumed == 0 and block >= records.MAX_CENTRAL_HEADER:
                raise CorruptArchiveError("central directory makes no progress")
            block = min(max(block * 4, records.MAX_CENTRAL_HEADER + 1), BLOCK)
        return pos

    def _capacity(self) -> int:
        return self.end.cd_size // records.CENTRAL.size

    def _build_prefix(self) -> None:
        builder = IndexBuilder(self._capacity(), max_name_bytes=self.end.cd_size)
        self._prefix_end = self._decode(
            start=0, builder=builder, stop_after_metadata=True, first_block=FIRST_BLOCK
        )
        self._absorb(builder)
        if self._prefix_end >= self.end.cd_size:
            # The whole directory was metadata: the prefix is the full index.
            self._check_count(builder)
            self._full = builder.finish(complete=True)
            self._report(self._full)
        else:
            self._prefix = builder.finish(complete=False)

    def _build_full(self) -> ZipIndex:
        builder = IndexBuilder(self._capacity(), max_name_bytes=self.end.cd_size)
        # A source may fetch the whole directory at once (a remote one: in parallel requests).
        with self.source.will_read(self.end.cd_offset, self.end.cd_size):
            self._decode(start=0, builder=builder, stop_after_metadata=False, first_block=BLOCK)
        self._check_count(builder)
        self._absorb(builder)
        index = builder.finish(complete=True)
        self._report(index)
        prefix = self._prefix
        if prefix is not None and len(prefix) <= len(index) and np.array_equal(
            prefix.header_offset, index.header_offset[: len(prefix)]
        ):
            # Same rows: keep the data offsets already read from local headers.
            index.data_offset[: len(prefix)] = prefix.data_offset
        self._whole_directory = builder.n == builder.headers
        if self.comment.json_first and builder.metadata_after_data:
            self.json_first_violations = builder.metadata_after_data
            self._warn(
                "archive comment claims jsonFirst, but metadata follows data entries: "
                + ", ".join(repr(n) for n in builder.metadata_after_data[:5])
            )
        self._full = index
        self._prefix = None
        return index

    def _check_count(self, builder: IndexBuilder) -> None:
        claimed = self.end.entries
        if builder.headers != claimed and builder.headers % 0x10000 != claimed % 0x10000:
            raise CorruptArchiveError(
                f"central directory holds {builder.headers} entries, end record says {claimed}"
            )

    def _absorb(self, builder: IndexBuilder) -> None:
        self.n_directories = builder.directories
        if builder.n_unsafe > self.n_unsafe:
            self.n_unsafe = builder.n_unsafe
            self.unsafe_names = list(builder.unsafe)
            self._warn(
                f"{builder.n_unsafe} entries with unsafe names are ignored: "
                + ", ".join(repr(n) for n in builder.unsafe[:5])
            )

    def _report(self, index: ZipIndex) -> None:
        if index.duplicates and not self.duplicates:
            self.duplicates = index.duplicates
            self._warn(
                f"{len(index.duplicates)} names occur more than once (the last one is used): "
                + ", ".join(repr(n) for n in index.duplicates[:5])
            )

    # ---------------------------------------------------------------- index access

    @property
    def is_fully_indexed(self) -> bool:
        return self._full is not None

    def full_index(self) -> ZipIndex:
        index = self._full
        if index is not None:
            return index
        with self._build_lock:
            index = self._full
            if index is None:
                try:
                    index = self._build_full()
                except OzxError as e:
                    raise e.with_archive(self.name) from None
            return index

    def _absent_after_prefix(self, prefix: ZipIndex, name: str) -> bool:
        """May a metadata name missing from the jsonFirst prefix be reported absent?

        RFC-9's ``jsonFirst`` promises that no ``zarr.json`` follows the first other entry; a
        writer may lie, so the promise is checked once (by a search of the raw central-directory
        bytes after the prefix, where that is cheap) before a miss is believed.  Zarr v2 names
        (``.zgroup``...) are no part of a v3 hierarchy: with the root ``zarr.json`` in the prefix
        a miss on them is final.
        """
        base = name.rsplit("/", 1)[-1]
        if base != "zarr.json" and prefix.lookup("zarr.json") is not None:
            return True
        if not self.source.cheap_scan:
            # Remote sources trust the claim, as RFC-9 allows (checking costs the whole directory).
            return self.source.trust_json_first
        found = self._scan_cache.get(base)
        if found is None:
            end = self.end
            found = self.source.find(
                base.encode(), end.cd_offset + self._prefix_end, end.cd_offset + end.cd_size
            ) >= 0
            self._scan_cache[base] = found
        return not found

    def locate(self, name: str) -> tuple[ZipIndex, int] | None:
        """The index and row that answer for ``name``, or None when there is no such entry."""
        full = self._full
        if full is None:
            prefix = self._prefix
            if prefix is not None and is_metadata_name(name):
                row = prefix.lookup(name)
                if row is not None:
                    return prefix, row
                if self._absent_after_prefix(prefix, name):
                    return None
            full = self.full_index()
        row = full.lookup(name)
        return None if row is None else (full, row)

    def names(self, prefix: str = ""):
        """Names of the entries (each once) that start with ``prefix``, in directory order."""
        return self.full_index().iter_names(prefix)

    def metadata_names(self, *, trust_json_first: bool = False) -> list[str]:
        """Names of the Zarr metadata entries known without decoding more than needed.

        With ``trust_json_first`` a ``jsonFirst`` claim is taken at its word (RFC-9 lets readers
        do so): nothing after the metadata prefix is read.
        """
        index = self._full
        if index is None:
            prefix = self._prefix
            if prefix is not None and (
                trust_json_first or self._absent_after_prefix(prefix, "zarr.json")
            ):
                index = prefix
            else:
                index = self.full_index()
        return [index.name(int(r)) for r in index.metadata_rows()]

    def info(self, name: str) -> EntryInfo | None:
        loc = self.locate(name)
        if loc is None:
            return None
        index, row = loc
        return EntryInfo(
            name=name,
            method=int(index.method[row]),
            compressed_size=int(index.compressed_size[row]),
            uncompressed_size=int(index.uncompressed_size[row]),
            crc32=int(index.crc32[row]),
            header_offset=int(index.header_offset[row]),
            flags=int(index.flags[row]),
        )

    def stored_span(self, name: str) -> tuple[int, int, int] | None:
        """``(data offset, size, CRC-32)`` of a STORED entry's bytes in the source, for copying
        them as they are into another archive; None for an absent or compressed entry."""
        loc = self.locate(name)
        if loc is None:
            return None
        index, row = loc
        if int(index.method[row]) != records.METHOD_STORED or int(index.flags[row]) & (
                records.FLAG_ENCRYPTED | records.FLAG_STRONG_ENCRYPTION):
            return None
        size = int(index.uncompressed_size[row])
        if int(index.compressed_size[row]) != size:
            return None
        try:
            off = self._data_offset(index, row)
        except OzxError as e:
            raise e.with_archive(self.name) from None
        if off + size > self.end.cd_offset:
            raise CorruptArchiveError(
                f"data ({size} bytes at offset {off}) runs into the central directory",
                archive=self.name, entry=name)
        return off, size, int(index.crc32[row])

    def size(self, name: str) -> int | None:
        loc = self.locate(name)
        if loc is None:
            return None
        index, row = loc
        return int(index.uncompressed_size[row])

    # ---------------------------------------------------------------- reading

    def read(self, name: str, start: int = 0, stop: int | None = None) -> bytes | None:
        """Bytes ``[start:stop]`` of entry ``name`` (slice semantics), or None if absent."""
        loc = self.locate(name)
        if loc is None:
            return None
        index, row = loc
        try:
            try:
                return self._read_row(index, row, name, start, stop)
            except CorruptArchiveError:
                if not self._recheck_inferred_offset(index, row):
                    raise
                return self._read_row(index, row, name, start, stop)
        except OzxError as e:
            if e.entry is None:
                e.entry = name
            raise e.with_archive(self.name) from None

    def read_row(self, row: int, start: int = 0, stop: int | None = None) -> bytes:
        """Bytes of the entry of central-directory record ``row`` (of the full index): unlike
        :meth:`read`, the record's own bytes even when its name occurs again."""
        index = self.full_index()
        name = index.name(row)
        try:
            return self._read_row(index, row, name, start, stop)
        except OzxError as e:
            if e.entry is None:
                e.entry = name
            raise e.with_archive(self.name) from None

    def _data_offset(self, index: ZipIndex, row: int) -> int:
        off = int(index.data_offset[row]) - 1
        if off >= 0:
            return off
        hoff = int(index.header_offset[row])
        if hoff + records.LOCAL.size > self.end.cd_offset:
            raise CorruptArchiveError(
                f"local header offset {hoff} lies beyond the start of the central directory"
            )
        guesser = self._offset_guesser(index)
        if guesser is not None:
            guess = guesser.guess(row)
            if guess is not None:
                index.data_offset[row] = guess + 1
                return guess
        off = parse_local_header(self._read(hoff, records.LOCAL.size), hoff)
        index.data_offset[row] = off + 1
        if guesser is not None:
            guesser.learn(row, off)
        return off

    def _offset_guesser(self, index: ZipIndex) -> DataOffsetGuesser | None:
        """Over a network a local header costs a request: data offsets are inferred from the
        directory where that is safe (see :mod:`.layout`).  Made at the first miss, when the
        metadata (and the local headers next to it) are at hand to check the inference."""
        if self.source.cheap_scan or index is not self._full:
            return None
        if self._guesser is None:
            with self._build_lock:
                if self._guesser is None:
                    self._guesser = DataOffsetGuesser(
                        index, self.end.cd_offset,
                        index_is_whole_directory=self._whole_directory,
                        peek=self.source.peek,
                    )
        return self._guesser

    def _recheck_inferred_offset(self, index: ZipIndex, row: int) -> bool:
        """After a CRC mismatch: was the data offset inferred wrongly?  Then stop inferring and
        use the local header (the caller reads again)."""
        guesser = self._guesser if index is self._full else None
        if guesser is None or not guesser.enabled:
            return False
        hoff = int(index.header_offset[row])
        real = parse_local_header(self.source.read(hoff, records.LOCAL.size), hoff)
        guesser.disable()
        if real == int(index.data_offset[row]) - 1:
            return False
        index.data_offset[row] = real + 1
        return True

    def _read_row(self, index: ZipIndex, row: int, name: str, start: int, stop: int | None):
        method = int(index.method[row])
        check_readable(int(index.flags[row]), method)
        csize = int(index.compressed_size[row])
        usize = int(index.uncompressed_size[row])
        data_off = self._data_offset(index, row)
        if data_off + csize > self.end.cd_offset:
            raise CorruptArchiveError(
                f"data ({csize} bytes at offset {data_off}) runs into the central directory "
                f"at {self.end.cd_offset}"
            )
        lo, hi, _ = slice(start, stop).indices(usize)
        hi = max(hi, lo)
        if method == records.METHOD_STORED:
            if csize != usize:
                raise CorruptArchiveError(
                    f"stored entry has compressed size {csize} but uncompressed size {usize}"
                )
            if lo == 0 and hi == usize:
                data = self._read(data_off, usize)
                if self.verify_crc:
                    self._check_crc(data, index, row)
                return data
            if self.verify_stored and row not in self._checked.setdefault(id(index), set()):
                whole = self._read(data_off, usize)
                self._check_crc(whole, index, row)
                self._checked[id(index)].add(row)
                return whole[lo:hi]
            return self._read(data_off + lo, hi - lo)
        raw = self._read(data_off, csize)
        data = inflate(raw, usize)
        if self.verify_crc:
            self._check_crc(data, index, row)
        return data[lo:hi] if (lo, hi) != (0, usize) else data

    @staticmethod
    def _check_crc(data: bytes, index: ZipIndex, row: int) -> None:
        check_crc(data, int(index.crc32[row]))

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        # Pickle the address and options only; a new process decodes the directory again.
        return {
            "source": self.source,
            "tail_size": self._tail_size,
            "verify_crc": self.verify_crc,
            "verify_stored": self.verify_stored,
        }

    def __setstate__(self, state):
        self.__init__(
            state["source"], tail_size=state["tail_size"], verify_crc=state["verify_crc"],
            verify_stored=state.get("verify_stored", False), warn=False,
        )
