"""One entry as stored: its local header (where the data starts, the name it repeats) and its
data turned into the entry's bytes (stored as is, or inflated; the CRC-32 checked).

Sans-IO like the other parsers: bytes go in.  The archive and the napari probe
(:mod:`.probe`) both read entries through these functions, so both refuse what the other
refuses (encryption, other methods, a bad CRC, a deflate stream that lies about its size).
"""

from __future__ import annotations

import zlib

from ..errors import CorruptArchiveError, UnsupportedFeatureError
from . import records
from ._io import crc32
from .records import NeedBytes

__all__ = [
    "parse_local_header", "local_header_name", "check_readable", "inflate", "check_crc",
    "decode_entry",
]


def parse_local_header(buf: bytes | memoryview, header_offset: int) -> int:
    """The file offset of an entry's data, from the first 30 bytes of its local header."""
    if len(buf) < records.LOCAL.size:
        raise CorruptArchiveError(
            f"local header at offset {header_offset} is cut off by the end of the file"
        )
    sig, *_rest, nlen, elen = records.LOCAL.unpack_from(buf, 0)
    if sig != records.SIG_LOCAL:
        raise CorruptArchiveError(f"bad local header signature at offset {header_offset}")
    return header_offset + records.LOCAL.size + nlen + elen


def local_header_name(buf: bytes | memoryview, header_offset: int) -> bytes | NeedBytes:
    """The name an entry's local header gives (``buf``: bytes from the header on), or the
    bytes still needed to see it whole."""
    if len(buf) < records.LOCAL.size:
        return NeedBytes(header_offset, records.LOCAL.size)
    sig, *_rest, nlen, _elen = records.LOCAL.unpack_from(buf, 0)
    if sig != records.SIG_LOCAL:
        raise CorruptArchiveError(f"bad local header signature at offset {header_offset}")
    if len(buf) < records.LOCAL.size + nlen:
        return NeedBytes(header_offset, records.LOCAL.size + nlen)
    return bytes(buf[records.LOCAL.size: records.LOCAL.size + nlen])


def check_readable(flags: int, method: int) -> None:
    """Refuse an entry we cannot read: encrypted, or compressed other than by DEFLATE."""
    encrypted = flags & (records.FLAG_ENCRYPTED | records.FLAG_STRONG_ENCRYPTION)
    if encrypted or method == records.METHOD_AES:
        raise UnsupportedFeatureError("entry is encrypted; encrypted archives are not supported")
    if method not in (records.METHOD_STORED, records.METHOD_DEFLATED):
        raise UnsupportedFeatureError(
            f"compression method {records.method_name(method)} is not supported "
            "(RFC-9 archives store entries uncompressed)"
        )


def check_crc(data, want: int) -> None:
    """Refuse ``data`` whose CRC-32 is not the directory's ``want``."""
    got = crc32(data)
    if got != want:
        raise CorruptArchiveError(f"CRC-32 mismatch (data {got:08x}, directory {want:08x})")


def decode_entry(raw: bytes, *, flags: int, method: int, size: int, crc: int) -> bytes:
    """The ``size`` bytes of a whole entry from its stored ``raw`` data, CRC-32 checked."""
    check_readable(flags, method)
    if method == records.METHOD_DEFLATED:
        data = inflate(raw, size)
    elif len(raw) != size:
        raise CorruptArchiveError(
            f"stored entry has compressed size {len(raw)} but uncompressed size {size}"
        )
    else:
        data = raw
    check_crc(data, crc)
    return data


#: DEFLATE cannot expand its input more than 1032-fold (258 bytes per 2-bit match code).
_MAX_DEFLATE_RATIO = 1032


def inflate(raw: bytes, size: int) -> bytes:
    """Inflate a raw DEFLATE stream that must produce exactly ``size`` bytes."""
    if size > _MAX_DEFLATE_RATIO * len(raw) + 1024:
        # (also keeps ``size + 1`` below within what zlib accepts as a length)
        raise CorruptArchiveError(
            f"declared size of {size} bytes is more than {len(raw)} bytes of deflate data can hold"
        )
    d = zlib.decompressobj(-15)
    try:
        out = d.decompress(raw, size + 1)
    except zlib.error as e:
        raise CorruptArchiveError(f"deflate data is corrupt ({e})") from None
    if len(out) > size:
        raise CorruptArchiveError(f"deflate data inflates beyond its declared size of {size} bytes")
    if len(out) < size or not d.eof:
        raise CorruptArchiveError(
            f"deflate data ends after {len(out)} of its declared {size} bytes"
        )
    return out
