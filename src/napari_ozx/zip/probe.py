"""A quick look into a local ZIP for napari's reader getter: the archive comment, and the root
metadata documents when they are among the first entries of the central directory.

napari calls the getter for every ``.zip`` a user drops, so this must cost a few small reads
whatever the size of the archive and import no zarr.  It is not a :class:`~.archive.ZipArchive`
(which decodes the whole central directory of an archive without an RFC-9 ``jsonFirst``
comment), but it reads through the same pieces: the end-records loop (:func:`.eocd.read_end`),
the central-directory decoder, the local-header parser and the CRC-checked entry decoder
(:mod:`.entry`).  What the documents mean (OME or not) is the caller's to judge.
"""

from __future__ import annotations

import json
import os

from . import records
from .central import CentralBlock, parse_central_block
from .comment import OmeComment, parse_comment
from .entry import decode_entry, parse_local_header
from .eocd import read_end
from .records import EndOfCentralDirectory
from .source import LocalFile

__all__ = ["RootProbe", "PROBE_BLOCK", "MAX_PROBE_JSON"]

PROBE_BLOCK = 64 * 1024  # central-directory bytes looked at when deciding about a .zip
MAX_PROBE_JSON = 4 << 20  # a root metadata document larger than this is not read to decide


class RootProbe:
    """Opened on a local path: reads the end records at once; the first block of the central
    directory and the documents only when asked.  Raises what the parsers raise
    (:class:`~napari_ozx.errors.OzxError`, ``OSError``, ``ValueError`` for bad JSON)."""

    def __init__(self, path: str | os.PathLike):
        self.source = LocalFile(path)
        try:
            self.end: EndOfCentralDirectory = read_end(self.source).end
        except BaseException:
            self.source.close()
            raise
        self.comment: OmeComment = parse_comment(self.end.comment)
        self._block: CentralBlock | None = None

    def _first_block(self) -> CentralBlock | None:
        if self._block is None:
            end = self.end
            length = min(PROBE_BLOCK, end.cd_size)
            if length <= 0:
                return None
            buf = self.source.read(end.cd_offset, length)
            self._block = parse_central_block(buf, first_ordinal=0, final=length == end.cd_size,
                                              shift=end.shift)
        return self._block

    def root_document(self, name: str) -> dict | None:
        """The JSON object of root entry ``name`` (``zarr.json``, ``.zattrs``) if it is in the
        first block of the central directory and small; else None."""
        block = self._first_block()
        if block is None:
            return None
        key = name.encode()
        for i in reversed(range(len(block))):  # the last of equal names counts, as in the index
            s = int(block.name_start[i])
            if block.names[s : s + int(block.name_length[i])] == key:
                return self._read_small(block, i)
        return None

    def _read_small(self, block: CentralBlock, i: int) -> dict | None:
        csize, usize = int(block.compressed_size[i]), int(block.uncompressed_size[i])
        method = int(block.method[i])
        if usize > MAX_PROBE_JSON or csize > MAX_PROBE_JSON:
            return None
        if method not in (records.METHOD_STORED, records.METHOD_DEFLATED):
            return None  # not readable here: the next document may still decide
        hoff = int(block.header_offset[i])
        if hoff + records.LOCAL.size > self.end.cd_offset:
            return None
        data_off = parse_local_header(self.source.read(hoff, records.LOCAL.size), hoff)
        raw = self.source.read(data_off, csize)
        data = decode_entry(raw, flags=int(block.flags[i]), method=method,
                            size=usize, crc=int(block.crc32[i]))
        doc = json.loads(data.decode("utf-8"))
        return doc if isinstance(doc, dict) else None

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> RootProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
