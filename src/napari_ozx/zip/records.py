"""ZIP record layouts (PKWARE APPNOTE 6.3.x), defined once for the reader and the writer.

Only layouts, constants and pure pack/unpack helpers live here; no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# Signatures, as they appear in the file (little-endian u32).
SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_EOCD = b"PK\x05\x06"
SIG_ZIP64_EOCD = b"PK\x06\x06"
SIG_ZIP64_LOCATOR = b"PK\x06\x07"

# Fixed parts of each record.
LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
EXTRA_HEADER = struct.Struct("<HH")

MAX_COMMENT = 0xFFFF
#: The end-of-central-directory record lies in this many bytes at the end of the file.
MAX_TAIL = EOCD.size + MAX_COMMENT
#: A central-directory header is at most this long (three 16-bit lengths).
MAX_CENTRAL_HEADER = CENTRAL.size + 3 * 0xFFFF

U16_MAX = 0xFFFF
U32_MAX = 0xFFFFFFFF

ZIP64_EXTRA_ID = 0x0001

METHOD_STORED = 0
METHOD_DEFLATED = 8
#: WinZip AES encryption: the method field says 99, the real method is in an extra field
METHOD_AES = 99
METHOD_NAMES = {
    METHOD_STORED: "stored",
    1: "shrunk",
    6: "imploded",
    METHOD_DEFLATED: "deflated",
    9: "deflate64",
    12: "bzip2",
    14: "lzma",
    93: "zstandard",
    95: "xz",
    METHOD_AES: "AES-encrypted",
}

FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800

VERSION_ZIP64 = 45  # "version needed to extract" for ZIP64 entries

#: Packed little-endian view of the 46 fixed bytes of a central-directory header, used to decode
#: many headers at once (gathered into an (n, 46) uint8 array and viewed with this dtype).
CENTRAL_DTYPE = np.dtype(
    [
        ("signature", "<u4"),
        ("version_made_by", "<u2"),
        ("version_needed", "<u2"),
        ("flags", "<u2"),
        ("method", "<u2"),
        ("mtime", "<u2"),
        ("mdate", "<u2"),
        ("crc32", "<u4"),
        ("compressed_size", "<u4"),
        ("uncompressed_size", "<u4"),
        ("name_length", "<u2"),
        ("extra_length", "<u2"),
        ("comment_length", "<u2"),
        ("disk_start", "<u2"),
        ("internal_attr", "<u2"),
        ("external_attr", "<u4"),
        ("local_header_offset", "<u4"),
    ]
)
assert CENTRAL_DTYPE.itemsize == CENTRAL.size


def method_name(method: int) -> str:
    return METHOD_NAMES.get(method, f"method {method}")


@dataclass(frozen=True)
class NeedBytes:
    """The sans-IO request every parser of this package may answer: the parser needs
    ``length`` bytes starting at file offset ``offset``."""

    offset: int
    length: int


@dataclass(frozen=True)
class EndOfCentralDirectory:
    """What the end records (classic and ZIP64) say about the central directory."""

    entries: int
    cd_offset: int  #: where the central directory starts in the file (after `shift`)
    cd_size: int
    comment: bytes
    eocd_offset: int  #: file offset of the classic EOCD record
    zip64: bool  #: a ZIP64 end record and locator are present
    shift: int = 0  #: bytes prepended to the archive (offsets in records are relative to them)


def dos_datetime(year=1980, month=1, day=1, hour=0, minute=0, second=0) -> tuple[int, int]:
    """(time, date) in MS-DOS format."""
    date = ((year - 1980) << 9) | (month << 5) | day
    time = (hour << 11) | (minute << 5) | (second // 2)
    return time, date


def zip64_extra(*values: int) -> bytes:
    """A ZIP64 extended-information extra field holding ``values`` (each 8 bytes)."""
    body = b"".join(struct.pack("<Q", v) for v in values)
    return EXTRA_HEADER.pack(ZIP64_EXTRA_ID, len(body)) + body


def pack_local_header(
    name: bytes,
    *,
    method: int,
    crc32: int,
    compressed_size: int,
    uncompressed_size: int,
    extra: bytes = b"",
    flags: int = FLAG_UTF8,
    version_needed: int = VERSION_ZIP64,
    mtime: int = 0,
    mdate: int = 0x21,
) -> bytes:
    return (
        LOCAL.pack(
            SIG_LOCAL,
            version_needed,
            flags,
            method,
            mtime,
            mdate,
            crc32,
            compressed_size,
            uncompressed_size,
            len(name),
            len(extra),
        )
        + name
        + extra
    )


def pack_central_header(
    name: bytes,
    *,
    method: int,
    crc32: int,
    compressed_size: int,
    uncompressed_size: int,
    local_header_offset: int,
    extra: bytes = b"",
    flags: int = FLAG_UTF8,
    version_made_by: int = (3 << 8) | VERSION_ZIP64,  # Unix, 4.5
    version_needed: int = VERSION_ZIP64,
    mtime: int = 0,
    mdate: int = 0x21,
    external_attr: int = 0o100644 << 16,
) -> bytes:
    # Bytes 4-30 of a local header (version needed ... extra length) are bytes 6-32 of the
    # central header, field for field: packed once, by pack_local_header.
    local = pack_local_header(
        b"", method=method, crc32=crc32, compressed_size=compressed_size,
        uncompressed_size=uncompressed_size, flags=flags, version_needed=version_needed,
        mtime=mtime, mdate=mdate,
    )
    lengths = struct.pack("<HH", len(name), len(extra))
    return (
        SIG_CENTRAL
        + struct.pack("<H", version_made_by)
        + local[4 : LOCAL.size - 4]
        + lengths
        + _CENTRAL_AFTER_LENGTHS.pack(0, 0, 0, external_attr, local_header_offset)
        + name
        + extra
    )


#: The central header after its name and extra lengths: comment length, disk number start,
#: internal and external attributes, local header offset.
_CENTRAL_AFTER_LENGTHS = struct.Struct("<HHHII")
assert 6 + (LOCAL.size - 8) + 4 + _CENTRAL_AFTER_LENGTHS.size == CENTRAL.size


def pack_end_records(
    *, entries: int, cd_offset: int, cd_size: int, comment: bytes, zip64: bool
) -> bytes:
    """ZIP64 end record and locator (when ``zip64``), then the classic EOCD with ``comment``."""
    if len(comment) > MAX_COMMENT:
        raise ValueError(f"archive comment of {len(comment)} bytes exceeds {MAX_COMMENT}")
    out = b""
    if zip64:
        z64_offset = cd_offset + cd_size
        out += ZIP64_EOCD.pack(
            SIG_ZIP64_EOCD,
            ZIP64_EOCD.size - 12,
            (3 << 8) | VERSION_ZIP64,
            VERSION_ZIP64,
            0,
            0,
            entries,
            entries,
            cd_size,
            cd_offset,
        )
        out += ZIP64_LOCATOR.pack(SIG_ZIP64_LOCATOR, 0, z64_offset, 1)
        n16 = min(entries, U16_MAX)
        out += EOCD.pack(SIG_EOCD, 0, 0, n16, n16, U32_MAX, U32_MAX, len(comment))
    else:
        out += EOCD.pack(SIG_EOCD, 0, 0, entries, entries, cd_size, cd_offset, len(comment))
    return out + comment
