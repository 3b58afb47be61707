"""Where an entry's data starts, inferred from the central directory alone (sans-IO).

Reading an entry normally costs a look at its local header first: the data offset depends on
the LOCAL name and extra lengths, which may differ from the central directory's.  Over a network
that look is a request of its own.  In a packed archive (entries back to back, no data
descriptors) the data of an entry ends where the next local header begins (or the central
directory, for the last entry), so ``data start = next header offset - compressed size``, and
the local extra length it implies is ``data start - header offset - 30 - name length``.

From the directory alone "a 20-byte local extra field" and "no extra field, but 20 stray bytes
after the data" cannot be told apart, so the inference is used only where real local headers of
this archive (``learn``: the metadata entries and the first data entry, prefetched at open;
every header read later) show a layout that leaves no room for stray bytes:

- the index holds every entry of the directory (a dropped directory entry or unsafe name would
  hide a local header between two entries), and the entry has no data descriptor;
- uniform: at least two headers read, all with the same local extra length, and the implied one
  equal to it; or
- aligned (our writer, zipalign-style padding in the local extra field): the data entries read
  so far all start on a multiple of ``A`` >= 512 and the inferred start does too, with less than
  one step of padding beyond the largest extra length seen.

Any header that contradicts the inference switches it off for the archive.  What remains is an
archive built to look uniform (or aligned) while hiding stray bytes of exactly the right length;
whole-entry reads are CRC-checked (a mismatch re-reads the header and retries), and a Zarr shard
index carries its own CRC-32C.
"""

from __future__ import annotations

import threading

import numpy as np

from . import records
from .entry import parse_local_header


class DataOffsetGuesser:
    """Inferred data offsets of the rows of one complete :class:`~napari_ozx.zip.index.ZipIndex`.

    ``peek(offset, length)``: bytes already at hand (or None) - local headers found there are
    learnt from at no cost.
    """

    #: local headers looked for with ``peek`` (in header-offset order) when the guesser starts
    PEEK_ROWS = 256
    MIN_ALIGNMENT = 512

    def __init__(self, index, cd_offset: int, *, index_is_whole_directory: bool, peek=None):
        self._index = index
        self._cd_offset = int(cd_offset)
        order = np.argsort(index.header_offset, kind="stable")
        self._sorted = index.header_offset[order]
        self.enabled = bool(index_is_whole_directory) and len(self._sorted) > 0
        self.extras: set[int] = set()  #: local extra lengths of the headers read
        self.samples = 0
        self.alignment = 0  #: largest power of two dividing every data start read (0: none)
        self.max_data_extra = -1
        self._lock = threading.Lock()
        for row in np.flatnonzero(index.data_offset > 0)[: self.PEEK_ROWS]:
            self.learn(int(row), int(index.data_offset[row]) - 1)
        if peek is not None:
            for row in order[: self.PEEK_ROWS]:
                row = int(row)
                if index.data_offset[row] > 0:
                    continue
                hoff = int(index.header_offset[row])
                buf = peek(hoff, records.LOCAL.size)
                if buf is None or buf[:4] != records.SIG_LOCAL:
                    continue
                off = parse_local_header(buf, hoff)
                index.data_offset[row] = off + 1
                self.learn(row, off)

    def _infer(self, row: int) -> tuple[int, int] | None:
        """(data start, implied local extra length), or None where the layout forbids it."""
        index = self._index
        if int(index.flags[row]) & records.FLAG_DATA_DESCRIPTOR:
            return None
        hoff = int(index.header_offset[row])
        i = int(np.searchsorted(self._sorted, hoff, side="right"))
        nxt = int(self._sorted[i]) if i < len(self._sorted) else self._cd_offset
        start = nxt - int(index.compressed_size[row])
        extra = start - hoff - records.LOCAL.size - int(index.name_length[row])
        if not 0 <= extra <= 0xFFFF:
            return None
        return start, extra

    def _is_data(self, row: int) -> bool:
        is_meta = getattr(self._index, "is_metadata", None)
        return is_meta is None or not bool(is_meta[row])

    def learn(self, row: int, data_offset: int) -> None:
        """A local header was read: its real data offset checks the inference."""
        if not self.enabled:
            return
        inferred = self._infer(row)
        if inferred is None:
            return
        start, extra = inferred
        with self._lock:
            if start != data_offset:
                self.enabled = False  # stray bytes or a descriptor: this archive is not packed
                return
            self.extras.add(extra)
            self.samples += 1
            if self._is_data(row) and start > 0:
                align = min(start & -start, 1 << 16)
                self.alignment = align if not self.alignment else min(self.alignment, align)
                self.max_data_extra = max(self.max_data_extra, extra)

    def guess(self, row: int) -> int | None:
        if not self.enabled:
            return None
        inferred = self._infer(row)
        if inferred is None:
            return None
        start, extra = inferred
        if self.samples >= 2 and len(self.extras) == 1 and extra in self.extras:
            return start
        align = self.alignment
        if (align >= self.MIN_ALIGNMENT and start % align == 0
                and extra < self.max_data_extra + align + 64):
            return start
        return None

    def disable(self) -> None:
        self.enabled = False
