"""Where an entry's data starts, inferred from the central directory alone (sans-IO).

Reading an entry normally costs a look at its local header first: the data offset depends on
the LOCAL name and extra lengths, which may differ from the central directory's.  Over a network
that look is a request of its own.  In a packed archive (entries back to back, no data
descriptors) the data of an entry ends where the next local header begins (or the central
directory, for the last entry), so ``data start = next header offset - compressed size``, and
the local extra length it implies is ``data start - header offset - 30 - name length``.

That inference is used only when it is provably consistent with this archive:

- the index holds every entry of the directory (no directory entries or unsafe names dropped:
  a dropped entry would hide a local header between two entries);
- the entry has no data descriptor (flag bit 3: its data is followed by 12-24 more bytes);
- the implied local extra length is one that real local headers of this archive have shown
  (``learn``: every local header actually read is compared with the inference; a single
  disagreement switches inference off for the archive), so an archive with gaps or junk
  between entries produces implied lengths never seen and falls back to reading headers;
- or, for archives whose payloads are aligned with padding in the local extra field (our writer,
  Android's zipalign), the inferred start lies on the alignment that real padded local headers
  of this archive have shown, within one alignment step of a known extra length.

A whole-entry read is also CRC-checked, and the shard index of a Zarr shard carries its own
CRC-32C, so bytes from a wrong offset would not pass silently even then.
"""

from __future__ import annotations

import threading

import numpy as np

from . import records as R
from .parse import parse_local_header


class DataOffsetGuesser:
    """Inferred data offsets of the rows of one complete :class:`~napari_ozx.zip.index.ZipIndex`.

    ``peek(offset, length)``: bytes already at hand (or None) - local headers found there are
    learnt from at no cost.
    """

    #: local headers looked for with ``peek`` (in header-offset order) when the guesser starts
    PEEK_ROWS = 256

    def __init__(self, index, cd_offset: int, *, index_is_whole_directory: bool, peek=None):
        self._index = index
        self._cd_offset = int(cd_offset)
        order = np.argsort(index.header_offset, kind="stable")
        self._sorted = index.header_offset[order]
        self.enabled = bool(index_is_whole_directory) and len(self._sorted) > 0
        self.allowed_extra: set[int] = set()
        self.alignment = 0  #: payload alignment shown by padded local headers (0: none seen)
        self._lock = threading.Lock()
        for row in np.flatnonzero(index.data_offset > 0)[: self.PEEK_ROWS]:
            self.learn(int(row), int(index.data_offset[row]) - 1)
        if peek is not None:
            for row in order[: self.PEEK_ROWS]:
                row = int(row)
                if index.data_offset[row] > 0:
                    continue
                hoff = int(index.header_offset[row])
                buf = peek(hoff, R.LOCAL.size)
                if buf is None or buf[:4] != R.SIG_LOCAL:
                    continue
                off = parse_local_header(buf, hoff)
                index.data_offset[row] = off + 1
                self.learn(row, off)

    def _infer(self, row: int) -> tuple[int, int] | None:
        """(data start, implied local extra length), or None where the layout forbids it."""
        index = self._index
        if int(index.flags[row]) & R.FLAG_DATA_DESCRIPTOR:
            return None
        hoff = int(index.header_offset[row])
        i = int(np.searchsorted(self._sorted, hoff, side="right"))
        nxt = int(self._sorted[i]) if i < len(self._sorted) else self._cd_offset
        start = nxt - int(index.compressed_size[row])
        extra = start - hoff - R.LOCAL.size - int(index.name_length[row])
        if not 0 <= extra <= 0xFFFF:
            return None
        return start, extra

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
                self.enabled = False
                return
            self.allowed_extra.add(extra)
            base = min(self.allowed_extra)
            if extra > base and start > 0:
                # A padded header (e.g. zipalign-style alignment padding in the extra field):
                # the alignment it shows is the largest power of two dividing every such start.
                align = min(start & -start, 1 << 16)
                self.alignment = align if not self.alignment else min(self.alignment, align)

    def guess(self, row: int) -> int | None:
        if not self.enabled or not self.allowed_extra:
            return None
        inferred = self._infer(row)
        if inferred is None:
            return None
        start, extra = inferred
        if extra in self.allowed_extra:
            return start
        # Padded to an alignment this archive has shown: the start must sit on it, and the
        # padding be less than one alignment step beyond a known extra length.
        align = self.alignment
        base = min(self.allowed_extra)
        if align >= 512 and start % align == 0 and base <= extra < base + align + 64:
            return start
        return None

    def disable(self) -> None:
        self.enabled = False
