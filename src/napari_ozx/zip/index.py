"""A compact, immutable index of an archive's entries.

Columns of numbers and one packed blob of UTF-8 names: about 60 bytes an entry plus its name,
with no Python object per entry.  Names are found by a 64-bit hash kept sorted (binary search,
O(log n)); equal hashes are told apart by comparing the names themselves.  When a name occurs
more than once the entry latest in the central directory wins.
"""

from __future__ import annotations

import numpy as np

from ..errors import CorruptArchiveError
from .central import CentralBlock
from .namehash import name_hash

_COLUMNS = (
    ("header_offset", np.int64),
    ("compressed_size", np.int64),
    ("uncompressed_size", np.int64),
    ("crc32", np.uint32),
    ("method", np.uint16),
    ("flags", np.uint16),
    ("is_metadata", np.bool_),
    ("is_symlink", np.bool_),
    ("name_start", np.int64),  # uint32 when the central directory is under 4 GiB
    ("name_length", np.uint16),
    ("name_hash", np.uint64),
)


class ZipIndex:
    """Entries of (part of) a central directory.  Build it with :class:`IndexBuilder`."""

    # The columns (set from ``_COLUMNS``; ``name_hash`` only until the sorted keys are made).
    header_offset: np.ndarray
    compressed_size: np.ndarray
    uncompressed_size: np.ndarray
    crc32: np.ndarray
    method: np.ndarray
    flags: np.ndarray
    is_metadata: np.ndarray
    is_symlink: np.ndarray
    name_start: np.ndarray
    name_length: np.ndarray
    name_hash: np.ndarray

    def __init__(self, names: bytes, cols: dict[str, np.ndarray], *, complete: bool):
        self.names = names
        self._names_arr = np.frombuffer(names, dtype=np.uint8)
        for key, _ in _COLUMNS:
            setattr(self, key, cols[key])
        self.complete = complete  #: holds the whole central directory
        n = len(self.header_offset)
        # Data offsets + 1, filled from local headers on first use (0: not known yet).  Zeroed
        # memory from calloc: untouched pages cost nothing.
        self.data_offset = np.zeros(n, dtype=np.int64)
        # Sorted keys: the top bits of the name hash above the row number, so one np.sort
        # (no argsort, no second array) gives both the search key and the row.
        self._row_bits = max(1, int(n).bit_length())
        self._row_mask = np.uint64((1 << self._row_bits) - 1)
        shift = np.uint64(self._row_bits)
        keys = (self.name_hash >> shift) << shift
        keys |= np.arange(n, dtype=np.uint64)
        keys.sort()
        self._keys = keys
        del self.name_hash
        self.duplicates = self._find_duplicates()

    def __len__(self) -> int:
        return len(self.header_offset)

    def name(self, i: int) -> str:
        s = int(self.name_start[i])
        return self.names[s : s + int(self.name_length[i])].decode("utf-8", "surrogateescape")

    def _name_bytes(self, i: int) -> bytes:
        s = int(self.name_start[i])
        return self.names[s : s + int(self.name_length[i])]

    def _candidates(self, h: int):
        """Rows whose name hash has the same top bits as ``h``."""
        shift = self._row_bits
        top = (h >> shift) << shift
        keys = self._keys
        i = int(np.searchsorted(keys, np.uint64(top), side="left"))
        mask = int(self._row_mask)
        while i < len(keys):
            k = int(keys[i])
            if k & ~mask != top:
                break
            yield k & mask
            i += 1

    def lookup(self, name: str) -> int | None:
        """Row of the entry called ``name`` (the last one if it occurs twice), or None."""
        key = name.encode("utf-8", "surrogateescape")
        found = None
        for row in self._candidates(name_hash(key)):
            if (found is None or row > found) and self._name_bytes(row) == key:
                found = row
        return found

    def _find_duplicates(self) -> list[str]:
        keys = self._keys
        mask = self._row_mask
        tops = keys & ~mask
        same = np.flatnonzero(tops[1:] == tops[:-1])
        dups: set[str] = set()
        losers = []
        # Runs of equal hash tops (rare, tiny): group their rows by name; all but the last
        # row of a name lose.
        k = 0
        while k < len(same):
            start = int(same[k])
            end = start + 1
            while k < len(same) and int(same[k]) == end - 1:
                end += 1
                k += 1
            by_name: dict[bytes, list[int]] = {}
            for i in range(start, end):
                row = int(keys[i] & mask)
                by_name.setdefault(self._name_bytes(row), []).append(row)
            for rows in by_name.values():
                if len(rows) > 1:
                    dups.add(self.name(rows[0]))
                    losers.extend(sorted(rows)[:-1])
        # (sorted() rather than np.unique, which imports numpy.ma: 13 ms at first open)
        self._losers = np.asarray(sorted(set(losers)), dtype=np.int64)
        return sorted(dups)

    def rows(self, prefix: str = "") -> np.ndarray:
        """Rows whose names start with ``prefix``, in central-directory order, one per name."""
        n = len(self)
        if prefix:
            p = np.frombuffer(prefix.encode("utf-8", "surrogateescape"), dtype=np.uint8)
            k = len(p)
            cand = np.flatnonzero(self.name_length >= k)
            if len(cand):
                # Compare the first byte for all, then the rest on the survivors only.
                for j in range(k):
                    if len(cand) == 0:
                        break
                    cand = cand[self._names_arr[self.name_start[cand] + j] == p[j]]
            rows = cand
        else:
            rows = np.arange(n)
        if len(self._losers):
            rows = rows[~np.isin(rows, self._losers)]
        return rows

    def iter_names(self, prefix: str = ""):
        for r in self.rows(prefix):
            yield self.name(int(r))

    def metadata_rows(self) -> np.ndarray:
        return np.flatnonzero(self.is_metadata)


class IndexBuilder:
    """Collects :class:`CentralBlock` columns into preallocated arrays.

    ``capacity`` bounds the entries (the end record's count, itself bounded by the central
    directory's size); arrays are allocated lazily by the OS, so unused capacity costs no memory.
    """

    def __init__(self, capacity: int, *, max_name_bytes: int = 2**63):
        self.capacity = capacity
        dtypes: dict[str, type] = dict(_COLUMNS)
        if max_name_bytes < 2**32:
            dtypes["name_start"] = np.uint32
        self._cols: dict[str, np.ndarray] = {
            k: np.empty(capacity, dtype=t) for k, t in dtypes.items()
        }
        self._names: list[bytes] = []
        self._name_bytes = 0
        self.n = 0
        self.headers = 0  # headers decoded, including skipped ones
        self.directories = 0
        self.unsafe: list[str] = []
        self.n_unsafe = 0
        self.first_non_metadata: int | None = None  # ordinal of the first data entry
        self.metadata_after_data: list[str] = []  # names breaking a jsonFirst claim

    def add(self, block: CentralBlock) -> None:
        m = len(block)
        if self.n + m > self.capacity:
            raise CorruptArchiveError(
                f"central directory holds more than the {self.capacity} entries its end record "
                "claims"
            )
        sl = slice(self.n, self.n + m)
        for key, _ in _COLUMNS:
            if key == "name_start":
                self._cols[key][sl] = block.name_start + self._name_bytes
            else:
                self._cols[key][sl] = getattr(block, key)
        # jsonFirst bookkeeping: metadata that comes after the first data entry.
        non_meta = np.flatnonzero(~block.is_metadata)
        if self.first_non_metadata is None and len(non_meta):
            self.first_non_metadata = int(block.ordinal[non_meta[0]])
        if self.first_non_metadata is not None and len(self.metadata_after_data) < 20:
            late = np.flatnonzero(block.is_metadata & (block.ordinal > self.first_non_metadata))
            for r in late[: 20 - len(self.metadata_after_data)]:
                s = int(block.name_start[r])
                self.metadata_after_data.append(
                    block.names[s : s + int(block.name_length[r])].decode("utf-8", "replace")
                )
        self._names.append(block.names)
        self._name_bytes += len(block.names)
        self.n += m
        self.headers += block.count
        self.directories += block.skipped_directories
        self.n_unsafe += block.n_unsafe
        self.unsafe.extend(block.skipped_unsafe[: max(0, 20 - len(self.unsafe))])

    def finish(self, *, complete: bool) -> ZipIndex:
        cols = {k: v[: self.n] for k, v in self._cols.items()}
        names = b"".join(self._names)
        self._names = []
        return ZipIndex(names, cols, complete=complete)
