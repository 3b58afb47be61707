"""The end of a ZIP archive: finding and decoding the end-of-central-directory record, the
ZIP64 end record and locator, and so where the central directory is and what the comment is.

Sans-IO: :func:`parse_tail` takes the last bytes of the file (and their offset) and answers an
:class:`~.records.EndOfCentralDirectory` or :class:`~.records.NeedBytes` ("read these bytes
and call again"); :func:`read_end` is the one loop that feeds it from a byte source, used by
the archive and the napari probe alike.  What the comment means (RFC-9) is :mod:`.comment`'s.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

from ..errors import CorruptArchiveError, MultiPartArchiveError, NotAZipError
from . import records
from .records import EndOfCentralDirectory, NeedBytes

if TYPE_CHECKING:
    from .source import ByteSource

__all__ = ["tail_request", "parse_tail", "read_end", "Tail"]


def tail_request(file_size: int, length: int = records.MAX_TAIL) -> NeedBytes:
    """The first read of an archive: its last ``length`` bytes (at least the EOCD's window)."""
    length = max(length, records.MAX_TAIL)
    start = max(0, file_size - length)
    return NeedBytes(start, file_size - start)


def parse_tail(buf: bytes, buf_offset: int, file_size: int) -> EndOfCentralDirectory | NeedBytes:
    """Find and decode the end records in ``buf`` (file bytes starting at ``buf_offset``).

    ``buf`` should reach the end of the file.  Answers :class:`NeedBytes` when the ZIP64 end
    record lies before ``buf`` or when ``buf`` does not cover the whole EOCD search window.
    """
    buf_end = buf_offset + len(buf)
    if buf_end != file_size:
        return tail_request(file_size)
    if file_size < records.EOCD.size:
        raise NotAZipError(f"file of {file_size} bytes is too small to be a ZIP archive")
    window_start = max(0, file_size - records.MAX_TAIL)
    if buf_offset > window_start:
        return tail_request(file_size)

    # Candidates for the EOCD, last first.  A candidate is right when its comment length
    # reaches exactly to the end of the file; a comment may itself contain the signature.
    lo = window_start - buf_offset
    fallback = None
    pos = buf.rfind(records.SIG_EOCD, lo)
    while pos >= 0:
        if pos + records.EOCD.size <= len(buf):
            clen = struct.unpack_from("<H", buf, pos + 20)[0]
            end = pos + records.EOCD.size + clen
            if end == len(buf):
                return _decode_end(buf, buf_offset, pos, file_size)
            if end < len(buf) and fallback is None:
                fallback = pos
        pos = buf.rfind(records.SIG_EOCD, lo, pos)
    if fallback is not None:
        # Bytes after the comment (appended by some tools): the record is still usable.
        return _decode_end(buf, buf_offset, fallback, file_size)
    if buf.rfind(records.SIG_EOCD, lo) >= 0:
        raise CorruptArchiveError(
            "end-of-central-directory comment length runs past the end of the file "
            "(truncated archive?)"
        )
    raise NotAZipError("no end-of-central-directory record (not a ZIP archive, or truncated)")


def _decode_end(
    buf: bytes, buf_offset: int, pos: int, file_size: int
) -> EndOfCentralDirectory | NeedBytes:
    (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, clen) = records.EOCD.unpack_from(
        buf, pos)
    comment = bytes(buf[pos + records.EOCD.size : pos + records.EOCD.size + clen])
    eocd_offset = buf_offset + pos

    zip64 = False
    loc = pos - records.ZIP64_LOCATOR.size
    end_of_cd = eocd_offset  # where the central directory should end
    if loc < 0 and buf_offset > 0:
        # A maximal comment pushes a ZIP64 locator (if any) out of the search window.
        start = max(0, eocd_offset - records.ZIP64_LOCATOR.size - records.ZIP64_EOCD.size)
        return NeedBytes(start, file_size - start)
    if loc >= 0 and buf[loc : loc + 4] == records.SIG_ZIP64_LOCATOR:
        _, z64_disk, z64_offset, n_disks = records.ZIP64_LOCATOR.unpack_from(buf, loc)
        if n_disks > 1 or z64_disk != 0:
            raise MultiPartArchiveError(f"multi-part (split) archive of {n_disks} disks")
        # The ZIP64 end record normally sits just before the locator; its stated offset is
        # relative to the archive start, which differs when bytes were prepended.
        expected = buf_offset + loc - records.ZIP64_EOCD.size
        candidates = [expected, z64_offset] if expected != z64_offset else [expected]
        for z64 in candidates:
            if z64 < 0 or z64 + records.ZIP64_EOCD.size > eocd_offset - records.ZIP64_LOCATOR.size:
                continue
            if z64 < buf_offset:
                return NeedBytes(z64, file_size - z64)
            rec = buf[z64 - buf_offset : z64 - buf_offset + records.ZIP64_EOCD.size]
            if rec[:4] != records.SIG_ZIP64_EOCD:
                continue
            (_, _, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset) = (
                records.ZIP64_EOCD.unpack(rec))
            zip64 = True
            end_of_cd = z64
            break
        else:
            raise CorruptArchiveError(
                "ZIP64 end-of-central-directory locator points at no ZIP64 end record"
            )

    if disk != 0 or cd_disk != 0:
        raise MultiPartArchiveError(
            f"multi-part (split) archive: this is disk {disk}, central directory on disk {cd_disk}"
        )
    if n_disk != n_total:
        raise MultiPartArchiveError("multi-part (split) archive: entries on other disks")
    if not zip64 and (cd_offset == records.U32_MAX or cd_size == records.U32_MAX):
        raise CorruptArchiveError(
            "end record marks ZIP64 values (0xFFFFFFFF) but there is no ZIP64 end record"
        )
    if cd_size > end_of_cd:
        raise CorruptArchiveError(
            f"central directory size {cd_size} exceeds the {end_of_cd} bytes before the end records"
        )
    shift = end_of_cd - cd_size - cd_offset
    if shift < 0:
        raise CorruptArchiveError(
            f"central directory (offset {cd_offset}, size {cd_size}) overlaps the end records "
            f"at {end_of_cd}"
        )
    if n_total > cd_size // records.CENTRAL.size and not (n_total == 0 and cd_size == 0):
        # Every entry takes at least 46 bytes: a count beyond that is a lie we must not
        # allocate for.  (Pre-ZIP64 writers that wrapped the 16-bit count say fewer, not more.)
        raise CorruptArchiveError(
            f"end record claims {n_total} entries, more than a {cd_size}-byte central directory "
            "holds"
        )
    return EndOfCentralDirectory(
        entries=n_total,
        cd_offset=cd_offset + shift,
        cd_size=cd_size,
        comment=comment,
        eocd_offset=eocd_offset,
        zip64=zip64,
        shift=shift,
    )


class Tail(NamedTuple):
    """The end records, and the last bytes of the file read to find them (kept: they often
    hold the whole central directory of a small archive)."""

    end: EndOfCentralDirectory
    offset: int  #: file offset of ``data``
    data: bytes


def read_end(source: ByteSource, tail_size: int = records.MAX_TAIL) -> Tail:
    """Read the end records of ``source``: the last ``tail_size`` bytes first, more when
    :func:`parse_tail` asks.  Every read runs to the end of the file and starts earlier than the
    one before, so the loop ends."""
    size = source.size
    need = tail_request(size, tail_size)
    while True:
        data = source.read(need.offset, need.length)
        result = parse_tail(data, need.offset, size)
        if not isinstance(result, NeedBytes):
            return Tail(result, need.offset, data)
        if result.offset >= need.offset and result.length <= need.length:
            raise CorruptArchiveError("end records point at themselves")
        need = result
