"""Sans-IO parsers for ZIP records.

Every function here takes bytes (and the file offset those bytes came from) and answers either
parsed records or :class:`NeedBytes`, "give me ``length`` bytes at ``offset``".  None of them
reads a file or a socket; the byte sources in :mod:`napari_ozx.zip.source` feed them, so one
parser serves local files and remote objects alike.

The central directory is decoded in blocks with numpy: a block of bytes goes in, columns of
fields come out (:class:`CentralBlock`), without a Python object per entry.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import CorruptArchiveError, NotAZipError, UnsupportedFeatureError
from . import records as R
from .names import METADATA_BASENAMES
from .records import EndOfCentralDirectory

__all__ = [
    "NeedBytes",
    "OmeComment",
    "CentralBlock",
    "parse_tail",
    "parse_comment",
    "parse_central_block",
    "parse_local_header",
    "name_hash",
]


@dataclass(frozen=True)
class NeedBytes:
    """The parser needs ``length`` bytes starting at file offset ``offset``."""

    offset: int
    length: int


# --------------------------------------------------------------------------------------------
# End records
# --------------------------------------------------------------------------------------------


def tail_request(file_size: int, length: int = R.MAX_TAIL) -> NeedBytes:
    """The first read of an archive: its last ``length`` bytes (at least the EOCD's window)."""
    length = max(length, R.MAX_TAIL)
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
    if file_size < R.EOCD.size:
        raise NotAZipError(f"file of {file_size} bytes is too small to be a ZIP archive")
    window_start = max(0, file_size - R.MAX_TAIL)
    if buf_offset > window_start:
        return tail_request(file_size)

    # Candidates for the EOCD, last first.  A candidate is right when its comment length
    # reaches exactly to the end of the file; a comment may itself contain the signature.
    lo = window_start - buf_offset
    fallback = None
    pos = buf.rfind(R.SIG_EOCD, lo)
    while pos >= 0:
        if pos + R.EOCD.size <= len(buf):
            clen = struct.unpack_from("<H", buf, pos + 20)[0]
            end = pos + R.EOCD.size + clen
            if end == len(buf):
                return _decode_end(buf, buf_offset, pos, file_size)
            if end < len(buf) and fallback is None:
                fallback = pos
        pos = buf.rfind(R.SIG_EOCD, lo, pos)
    if fallback is not None:
        # Bytes after the comment (appended by some tools): the record is still usable.
        return _decode_end(buf, buf_offset, fallback, file_size)
    if buf.rfind(R.SIG_EOCD, lo) >= 0:
        raise CorruptArchiveError(
            "end-of-central-directory comment length runs past the end of the file "
            "(truncated archive?)"
        )
    raise NotAZipError("no end-of-central-directory record (not a ZIP archive, or truncated)")


def _decode_end(
    buf: bytes, buf_offset: int, pos: int, file_size: int
) -> EndOfCentralDirectory | NeedBytes:
    (_, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, clen) = R.EOCD.unpack_from(buf, pos)
    comment = bytes(buf[pos + R.EOCD.size : pos + R.EOCD.size + clen])
    eocd_offset = buf_offset + pos

    zip64 = False
    loc = pos - R.ZIP64_LOCATOR.size
    end_of_cd = eocd_offset  # where the central directory should end
    if loc < 0 and buf_offset > 0:
        # A maximal comment pushes a ZIP64 locator (if any) out of the search window.
        start = max(0, eocd_offset - R.ZIP64_LOCATOR.size - R.ZIP64_EOCD.size)
        return NeedBytes(start, file_size - start)
    if loc >= 0 and buf[loc : loc + 4] == R.SIG_ZIP64_LOCATOR:
        _, z64_disk, z64_offset, n_disks = R.ZIP64_LOCATOR.unpack_from(buf, loc)
        if n_disks > 1 or z64_disk != 0:
            raise UnsupportedFeatureError(f"multi-part (split) archive of {n_disks} disks")
        # The ZIP64 end record normally sits just before the locator; its stated offset is
        # relative to the archive start, which differs when bytes were prepended.
        expected = buf_offset + loc - R.ZIP64_EOCD.size
        candidates = [expected, z64_offset] if expected != z64_offset else [expected]
        for z64 in candidates:
            if z64 < 0 or z64 + R.ZIP64_EOCD.size > eocd_offset - R.ZIP64_LOCATOR.size:
                continue
            if z64 < buf_offset:
                return NeedBytes(z64, file_size - z64)
            rec = buf[z64 - buf_offset : z64 - buf_offset + R.ZIP64_EOCD.size]
            if rec[:4] != R.SIG_ZIP64_EOCD:
                continue
            (_, _, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset) = R.ZIP64_EOCD.unpack(
                rec
            )
            zip64 = True
            end_of_cd = z64
            break
        else:
            raise CorruptArchiveError(
                "ZIP64 end-of-central-directory locator points at no ZIP64 end record"
            )

    if disk != 0 or cd_disk != 0:
        raise UnsupportedFeatureError(
            f"multi-part (split) archive: this is disk {disk}, central directory on disk {cd_disk}"
        )
    if n_disk != n_total:
        raise UnsupportedFeatureError("multi-part (split) archive: entries on other disks")
    if not zip64 and (cd_offset == R.U32_MAX or cd_size == R.U32_MAX):
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
    if n_total > cd_size // R.CENTRAL.size and not (n_total == 0 and cd_size == 0):
        # Every entry takes at least 46 bytes: a count beyond that is a lie we must not
        # allocate for.  (Pre-ZIP64 writers that wrapped the 16-bit count say fewer, not more.)
        raise CorruptArchiveError(
            f"end record claims {n_total} entries, more than a {cd_size}-byte central directory holds"
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


# --------------------------------------------------------------------------------------------
# The RFC-9 archive comment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OmeComment:
    """The archive comment as RFC-9 reads it."""

    raw: bytes
    data: dict | None = None
    version: str | None = None
    json_first: bool = False
    problem: str | None = None  #: why the comment is not a usable RFC-9 comment, if it is not


def parse_comment(comment: bytes) -> OmeComment:
    if not comment:
        return OmeComment(raw=comment, problem="no archive comment")
    try:
        data = json.loads(comment.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return OmeComment(raw=comment, problem="archive comment is not UTF-8 JSON")
    if not isinstance(data, dict) or not isinstance(data.get("ome"), dict):
        return OmeComment(raw=comment, data=None, problem='archive comment has no "ome" object')
    ome = data["ome"]
    version = ome.get("version")
    version = version if isinstance(version, str) else None
    zf = ome.get("zipFile")
    cd = zf.get("centralDirectory") if isinstance(zf, dict) else None
    json_first = bool(isinstance(cd, dict) and cd.get("jsonFirst") is True)
    problem = None if version else 'archive comment has no "ome.version"'
    return OmeComment(raw=comment, data=data, version=version, json_first=json_first, problem=problem)


# --------------------------------------------------------------------------------------------
# Central directory, decoded in blocks
# --------------------------------------------------------------------------------------------


_M64 = 0xFFFFFFFFFFFFFFFF
_HASH_MULT = 0x9E3779B97F4A7C15
_HASH_POW = None  # uint64 powers of _HASH_MULT, grown on demand


def _hash_powers(n: int) -> np.ndarray:
    global _HASH_POW
    if _HASH_POW is None or len(_HASH_POW) < n:
        m = max(n, 64)
        p = np.full(m, _HASH_MULT, dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):
            _HASH_POW = np.cumprod(p, dtype=np.uint64)
    return _HASH_POW


def _mix(h: int) -> int:
    """splitmix64's finaliser: spreads every input bit over the result (the index sorts by
    the top bits)."""
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _M64
    return h ^ (h >> 31)


def name_hash(name: bytes) -> int:
    """The 64-bit hash the index sorts names by.

    The name, zero-padded to whole 8-byte little-endian words w_i, gives
    mix(sum(w_i * K**i) + length) (mod 2**64).
    """
    n = len(name)
    words = struct.unpack(f"<{(n + 7) // 8}Q", name + b"\0" * (-n % 8))
    h = 0
    k = 1
    for w in words:
        h = (h + w * k) & _M64
        k = (k * _HASH_MULT) & _M64
    return _mix((h + n) & _M64)


def _mix_array(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def _hash_words(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` of zero-padded names given as rows of little-endian u64 words."""
    pw = _hash_powers(words.shape[1])[: words.shape[1]]
    with np.errstate(over="ignore"):
        h = (words * pw).sum(axis=1, dtype=np.uint64)
        h += lengths.astype(np.uint64)
    return _mix_array(h)


def _hash_names(blob: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` over names packed in ``blob`` (any lengths; the general path)."""
    n = len(starts)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    nwords = (lengths + 7) // 8
    width = int(nwords.max()) * 8
    out = np.empty(n, dtype=np.uint64)
    # Work in slices so the zero-padded copy stays small even for long names.
    step = max(1, (4 << 20) // max(width, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        ln = lengths[lo:hi]
        w = int(nwords[lo:hi].max()) * 8 if hi > lo else 8
        mat = np.zeros((hi - lo, max(w, 8)), dtype=np.uint8)
        total = int(ln.sum())
        if total:
            row = np.repeat(np.arange(hi - lo), ln)
            col = np.arange(total) - np.repeat(np.cumsum(ln) - ln, ln)
            mat[row, col] = blob[np.repeat(starts[lo:hi], ln) + col]
        out[lo:hi] = _hash_words(mat.view("<u8"), ln)
    return out


@dataclass
class CentralBlock:
    """Entries decoded from one block of the central directory, as columns.

    ``names`` packs the (UTF-8) names back to back; entry ``i`` is
    ``names[name_start[i]:name_start[i] + name_length[i]]``.  Directory entries and unsafe
    names are not in the columns: they are counted and listed in ``skipped_*``.
    """

    names: bytes
    name_start: np.ndarray  # int64
    name_length: np.ndarray  # int32
    name_hash: np.ndarray  # uint64
    header_offset: np.ndarray  # int64, local header offset (after shift)
    compressed_size: np.ndarray  # int64
    uncompressed_size: np.ndarray  # int64
    crc32: np.ndarray  # uint32
    method: np.ndarray  # uint16
    flags: np.ndarray  # uint16
    is_metadata: np.ndarray  # bool
    ordinal: np.ndarray  # int64: position of the entry in the central directory
    consumed: int = 0  #: bytes of the block that held whole headers
    count: int = 0  #: headers decoded (including skipped ones)
    stopped: bool = False  #: decoding stopped at the first non-metadata entry
    skipped_directories: int = 0
    skipped_unsafe: list[str] = field(default_factory=list)
    n_unsafe: int = 0
    #: bool: the entry is a Unix symbolic link (made by a Unix host, mode S_IFLNK)
    is_symlink: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.name_start)


def _find_signatures(a: np.ndarray, sig: bytes) -> np.ndarray:
    """Sorted offsets at which the 4-byte ``sig`` occurs in ``a``."""
    target = np.frombuffer(sig, dtype="<u4")[0]
    found = []
    n = len(a)
    for k in range(4):
        m = (n - k) // 4
        if m <= 0:
            continue
        words = a[k : k + 4 * m].view("<u4")
        hits = np.flatnonzero(words == target)
        if len(hits):
            found.append(hits.astype(np.int64) * 4 + k)
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.concatenate(found))


def _u16(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return a[pos].astype(np.int64) | (a[pos + 1].astype(np.int64) << 8)


def _u64(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    idx = pos[:, None] + np.arange(8)
    return np.ascontiguousarray(a[idx]).view("<u8").reshape(-1).astype(np.int64)


PAD = _PAD = 320  # zero bytes appended to a block so fixed-width row views never run off its end
_MATRIX_WIDTH = _PAD - R.CENTRAL.size  # names up to this long are gathered as a 2-D matrix


def _rows(a: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``width`` bytes at each offset of ``pos``, as an (n, width) array (one gather, no index
    array of n * width entries)."""
    return sliding_window_view(a, width)[pos]


def parse_central_block(
    buf: bytes | bytearray | memoryview,
    *,
    length: int | None = None,
    first_ordinal: int,
    final: bool,
    shift: int = 0,
    stop_after_metadata: bool = False,
    max_entries: int | None = None,
) -> CentralBlock:
    """Decode the whole central-directory headers at the start of ``buf``.

    ``buf`` must begin at a header; only its first ``length`` bytes (all by default) are the
    block, any after them serve as scratch padding.  Headers cut off at the end of the block are
    left for the
    next block (``consumed`` says how far this one got) unless ``final``, when they are an
    error.  With ``stop_after_metadata``, decoding stops before the first entry that is not
    Zarr metadata (the RFC-9 ``jsonFirst`` prefix).
    """
    whole = np.frombuffer(buf, dtype=np.uint8)
    length = len(whole) if length is None else length
    raw = whole[:length]
    positions = _chain(raw, final)
    if max_entries is not None and len(positions) > max_entries:
        raise CorruptArchiveError(
            f"central directory holds more headers than the {max_entries} the end record allows"
        )
    if len(positions) == 0:
        return _empty_block()
    if len(whole) >= length + _PAD:
        a = whole  # bytes past the block are only ever read as padding of fixed-width rows
    else:
        a = np.concatenate([raw, np.zeros(_PAD, dtype=np.uint8)])
    hdr = _rows(a, positions, R.CENTRAL.size).view(R.CENTRAL_DTYPE)[:, 0]
    nlen = hdr["name_length"].astype(np.int64)
    elen = hdr["extra_length"].astype(np.int64)
    name_pos = positions + R.CENTRAL.size

    # Which entries are metadata or directories, read straight from the raw name bytes.
    is_meta = _endswith_metadata(a, name_pos, nlen)
    last = a[name_pos + np.maximum(nlen - 1, 0)]
    is_dir_all = (nlen > 0) & (last == ord("/"))
    count = len(positions)
    consumed = int(positions[-1] + R.CENTRAL.size + nlen[-1] + elen[-1] + hdr["comment_length"][-1])
    stopped = False
    if stop_after_metadata:
        # Directory entries do not end the metadata prefix (some writers list them first).
        non_meta = np.flatnonzero(~(is_meta | is_dir_all))
        if len(non_meta):
            count = int(non_meta[0])
            consumed = int(positions[count])
            stopped = True
            positions, hdr, nlen, elen, name_pos = (
                positions[:count], hdr[:count], nlen[:count], elen[:count], name_pos[:count]
            )
            is_meta, is_dir_all = is_meta[:count], is_dir_all[:count]
    if count == 0:
        blk = _empty_block()
        blk.stopped = stopped
        return blk

    # Names: a (n, width) matrix when they are short (the usual case), else a byte gather.
    width = int(nlen.max())
    if width <= _MATRIX_WIDTH:
        matrix = _rows(a, name_pos, max(width, 1))
        mask = np.arange(max(width, 1)) < nlen[:, None]
        blob = matrix[mask]
    else:
        matrix = mask = None
        total = int(nlen.sum())
        idx = np.repeat(name_pos - (np.cumsum(nlen) - nlen), nlen) + np.arange(total)
        blob = a[idx]
    blob_start = np.cumsum(nlen) - nlen

    # Names without the UTF-8 flag are cp437; only non-ASCII ones read differently.
    flags = hdr["flags"].astype(np.uint16)
    recoded = False
    high = blob >= 0x80
    if high.any():
        owner = np.searchsorted(blob_start, np.flatnonzero(high), side="right") - 1
        cp437 = np.asarray(sorted(set(owner[(flags[owner] & R.FLAG_UTF8) == 0].tolist())), np.int64)
        if len(cp437):
            unsafe = _unsafe_names(blob, blob_start, nlen)
            blob, nlen, blob_start = _recode_cp437(blob, nlen, blob_start, cp437)
            # A cp437 name grows up to 3x in UTF-8: past 65,535 bytes (what a ZIP name field
            # holds, and the index column) it is refused, never served under a cut-off name.
            unsafe |= nlen > R.U16_MAX
            matrix = mask = None
            recoded = True
    if not recoded:
        unsafe = _unsafe_names(blob, blob_start, nlen)
    is_dir = is_dir_all & ~unsafe
    keep = np.flatnonzero(~(unsafe | is_dir))

    # ZIP64 extra fields for entries whose 32-bit slots are saturated.
    usize = hdr["uncompressed_size"].astype(np.int64)
    csize = hdr["compressed_size"].astype(np.int64)
    hoff = hdr["local_header_offset"].astype(np.int64)
    disk = hdr["disk_start"].astype(np.int64)
    need64 = np.flatnonzero(
        (usize == R.U32_MAX) | (csize == R.U32_MAX) | (hoff == R.U32_MAX) | (disk == R.U16_MAX)
    )
    if len(need64):
        _apply_zip64(a, positions, nlen_raw=hdr["name_length"].astype(np.int64), elen=elen,
                     rows=need64, usize=usize, csize=csize, hoff=hoff, disk=disk)
    if np.any(disk[keep] != 0):
        raise UnsupportedFeatureError("multi-part (split) archive: entry data on another disk")

    sel_len = nlen[keep]
    new_start = np.cumsum(sel_len) - sel_len
    all_kept = len(keep) == len(nlen)
    if matrix is not None:
        km, kmask = (matrix, mask) if all_kept else (matrix[keep], mask[keep])
        names = blob.tobytes() if all_kept else km[kmask].tobytes()
        hashes = _hash_matrix(km, kmask, sel_len)
    else:
        if all_kept:
            names = blob.tobytes()
        else:
            kept_total = int(sel_len.sum())
            idx = np.repeat(blob_start[keep] - new_start, sel_len) + np.arange(kept_total)
            names = blob[idx].tobytes()
        hashes = _hash_names(np.frombuffer(names, dtype=np.uint8), new_start, sel_len)
    unsafe_rows = np.flatnonzero(unsafe)
    skipped_unsafe = [
        bytes(blob[blob_start[r] : blob_start[r] + min(int(nlen[r]), 200)]).decode(
            "utf-8", "replace"
        )  # (cut to 200 bytes: they end up in warning messages)
        for r in unsafe_rows[:20]
    ]
    return CentralBlock(
        names=names,
        name_start=new_start.astype(np.int64),
        name_length=sel_len.astype(np.int32),
        name_hash=hashes,
        header_offset=hoff[keep] + shift,
        compressed_size=csize[keep],
        uncompressed_size=usize[keep],
        crc32=hdr["crc32"][keep].astype(np.uint32),
        method=hdr["method"][keep].astype(np.uint16),
        flags=flags[keep],
        is_metadata=is_meta[keep],
        ordinal=keep.astype(np.int64) + first_ordinal,
        consumed=consumed,
        count=count,
        stopped=stopped,
        skipped_directories=int(is_dir.sum()),
        skipped_unsafe=skipped_unsafe,
        n_unsafe=len(unsafe_rows),
        is_symlink=(((hdr["external_attr"][keep] >> 16) & 0o170000) == 0o120000)
        & ((hdr["version_made_by"][keep] >> 8) == 3),
    )


def _hash_matrix(matrix: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` of the names in the rows of ``matrix`` (``mask`` marks name bytes)."""
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.uint64)
    width = matrix.shape[1]
    w8 = -(-width // 8) * 8
    padded = np.zeros((len(lengths), w8), dtype=np.uint8)
    np.multiply(matrix, mask, out=padded[:, :width], casting="unsafe")
    return _hash_words(padded.view("<u8"), lengths)


def _empty_block() -> CentralBlock:
    z = np.zeros(0, dtype=np.int64)
    return CentralBlock(
        names=b"",
        name_start=z,
        name_length=z.astype(np.int32),
        name_hash=z.astype(np.uint64),
        header_offset=z,
        compressed_size=z,
        uncompressed_size=z,
        crc32=z.astype(np.uint32),
        method=z.astype(np.uint16),
        flags=z.astype(np.uint16),
        is_metadata=z.astype(bool),
        ordinal=z,
    )


def _header_end(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """End offset of the headers at ``pos`` (all with 46 bytes available)."""
    return (
        pos
        + R.CENTRAL.size
        + _u16(a, pos + 28)
        + _u16(a, pos + 30)
        + _u16(a, pos + 32)
    )


def _chain(a: np.ndarray, final: bool) -> np.ndarray:
    """Offsets of the whole headers that follow each other from offset 0 of ``a``."""
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cands = _find_signatures(a, R.SIG_CENTRAL)
    if len(cands) == 0 or cands[0] != 0:
        if final or n >= R.MAX_CENTRAL_HEADER:
            raise CorruptArchiveError("bad central-directory header signature")
        return np.zeros(0, dtype=np.int64)
    cands = cands[cands + R.CENTRAL.size <= n]
    if len(cands) == 0:
        if final:
            raise CorruptArchiveError("central directory is truncated inside a header")
        return cands
    ends = _header_end(a, cands)
    # Fast path: every signature found is a header and they link up.
    if np.array_equal(ends[:-1], cands[1:]):
        chain = cands
        chain_ends = ends
    else:
        # Some signature bytes occur inside names or extra fields: walk the chain for real.
        where = {int(p): i for i, p in enumerate(cands)}
        out = [0]
        i = 0
        while True:
            e = int(ends[i])
            j = where.get(e)
            if j is None:
                break
            out.append(e)
            i = j
        chain = np.asarray(out, dtype=np.int64)
        chain_ends = ends[[where[int(p)] for p in chain]]
    # Drop the last header if it runs past the block.
    complete = chain_ends <= n
    if not complete.all():
        cut = int(np.argmin(complete))
        if final:
            raise CorruptArchiveError("central directory is truncated inside a header")
        chain = chain[:cut]
        chain_ends = chain_ends[:cut]
    if final:
        end = int(chain_ends[-1]) if len(chain) else 0
        if end != n:
            raise CorruptArchiveError(
                f"bad central-directory header signature at central-directory offset {end}"
            )
    elif len(chain) and int(chain_ends[-1]) + R.CENTRAL.size <= n:
        # The next header starts inside this block, so its signature must be there.
        e = int(chain_ends[-1])
        if bytes(a[e : e + 4]) != R.SIG_CENTRAL:
            raise CorruptArchiveError(
                f"bad central-directory header signature at central-directory offset {e}"
            )
    return chain


def _apply_zip64(a, positions, *, nlen_raw, elen, rows, usize, csize, hoff, disk):
    """Fill saturated fields of ``rows`` from their ZIP64 extended-information extra field."""
    start = positions[rows] + R.CENTRAL.size + nlen_raw[rows]
    limit = start + elen[rows]
    need_u = usize[rows] == R.U32_MAX
    need_c = csize[rows] == R.U32_MAX
    need_o = hoff[rows] == R.U32_MAX
    need_d = disk[rows] == R.U16_MAX
    needed = need_u.astype(np.int64) * 8 + need_c * 8 + need_o * 8 + need_d * 4
    # Fast path: the ZIP64 field is the first extra field (as every common writer puts it).
    ok = start + 4 <= limit
    first_id = np.where(ok, _u16(a, np.where(ok, start, 0)), -1)
    first_len = np.where(ok, _u16(a, np.where(ok, start + 2, 0)), -1)
    fast = ok & (first_id == R.ZIP64_EXTRA_ID) & (first_len >= needed) & (start + 4 + first_len <= limit)
    slow = np.flatnonzero(~fast)
    body = start + 4
    for r in slow:
        # Walk the extra fields of this header one by one.
        p, lim = int(start[r]), int(limit[r])
        found = None
        while p + 4 <= lim:
            fid, flen = int(_u16(a, np.array([p]))[0]), int(_u16(a, np.array([p + 2]))[0])
            if p + 4 + flen > lim:
                break
            if fid == R.ZIP64_EXTRA_ID:
                found = (p + 4, flen)
                break
            p += 4 + flen
        if found is None or found[1] < needed[r]:
            raise CorruptArchiveError(
                "central-directory header has 0xFFFFFFFF sizes or offset but no ZIP64 extra field"
            )
        body[r] = found[0]
    off = body.copy()
    sel = np.flatnonzero(need_u)
    if len(sel):
        usize[rows[sel]] = _u64(a, off[sel])
    off += need_u * 8
    sel = np.flatnonzero(need_c)
    if len(sel):
        csize[rows[sel]] = _u64(a, off[sel])
    off += need_c * 8
    sel = np.flatnonzero(need_o)
    if len(sel):
        hoff[rows[sel]] = _u64(a, off[sel])
    off += need_o * 8
    sel = np.flatnonzero(need_d)
    if len(sel):
        idx = off[sel]
        disk[rows[sel]] = (
            a[idx].astype(np.int64)
            | (a[idx + 1].astype(np.int64) << 8)
            | (a[idx + 2].astype(np.int64) << 16)
            | (a[idx + 3].astype(np.int64) << 24)
        )
    if np.any(usize[rows] < 0) or np.any(csize[rows] < 0) or np.any(hoff[rows] < 0):
        raise CorruptArchiveError("ZIP64 extra field holds a size or offset beyond 2**63")


def _recode_cp437(blob, nlen, blob_start, rows):
    """Re-encode the names of ``rows`` (cp437 in the archive) as UTF-8."""
    pieces = []
    rows_set = set(int(r) for r in rows)
    new_len = nlen.copy()
    for i in range(len(nlen)):
        raw = bytes(blob[blob_start[i] : blob_start[i] + nlen[i]])
        if i in rows_set:
            raw = raw.decode("cp437").encode("utf-8")
            new_len[i] = len(raw)
        pieces.append(raw)
    new_blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    return new_blob, new_len, np.cumsum(new_len) - new_len


def _endswith_metadata(a: np.ndarray, name_pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Which names (at ``name_pos`` in ``a``) are Zarr metadata: basename in
    :data:`METADATA_BASENAMES`."""
    out = np.zeros(len(name_pos), dtype=bool)
    # Pre-filter on the last four bytes ("json", "roup", ...): one 4-byte gather for all.
    pre = np.flatnonzero(lengths >= 4)
    if len(pre) == 0:
        return out
    last4 = np.ascontiguousarray(_rows(a, name_pos[pre] + lengths[pre] - 4, 4)).view("<u4")[:, 0]
    hit = np.zeros(len(pre), dtype=bool)
    for suffix in _METADATA_SUFFIX4:
        hit |= last4 == suffix
    pre = pre[hit]
    if len(pre) == 0:
        return out
    sub = _endswith_metadata_exact(a, name_pos[pre], lengths[pre])
    out[pre[sub]] = True
    return out


_METADATA_SUFFIX4 = sorted({int.from_bytes(b[-4:], "little") for b in METADATA_BASENAMES})


def _endswith_metadata_exact(a, name_pos, lengths):
    out = np.zeros(len(name_pos), dtype=bool)
    ends = name_pos + lengths
    by_len: dict[int, list[bytes]] = {}
    for base in METADATA_BASENAMES:
        by_len.setdefault(len(base), []).append(base)
    for k, bases in by_len.items():
        cand = np.flatnonzero(lengths >= k)
        if len(cand) == 0:
            continue
        tail = _rows(a, ends[cand] - k, k)
        match = np.zeros(len(cand), dtype=bool)
        for base in bases:
            match |= np.all(tail == np.frombuffer(base, dtype=np.uint8), axis=1)
        cand, match = cand[match], None
        if len(cand) == 0:
            continue
        at_root = lengths[cand] == k
        slash = a[np.maximum(ends[cand] - k - 1, 0)] == ord("/")
        out[cand[at_root | slash]] = True
    return out


def _unsafe_names(blob: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`~.names.is_unsafe_name` of every name packed in ``blob``, at once (a Python call
    per name would cost more than decoding its header).  Must agree with the scalar rule:
    tests/test_zip_names.py checks it does on random names."""
    bad = lengths == 0
    if len(blob) == 0:
        return bad
    nonempty = ~bad
    bad |= nonempty & (blob[np.where(nonempty, starts, 0)] == ord("/"))

    def owner_of(pos):
        return np.searchsorted(starts, pos, side="right") - 1

    for ch in (ord("\\"), 0):
        hits = np.flatnonzero(blob == ch)
        if len(hits):
            bad[owner_of(hits)] = True
    dots = np.flatnonzero((blob[:-1] == ord(".")) & (blob[1:] == ord(".")))
    if len(dots):
        own = owner_of(dots)
        seg_start = (dots == starts[own]) | (blob[np.maximum(dots - 1, 0)] == ord("/"))
        after = dots + 2
        end = starts[own] + lengths[own]
        seg_end = (after == end) | (blob[np.minimum(after, len(blob) - 1)] == ord("/"))
        bad[own[seg_start & seg_end]] = True
    # A drive letter ("C:") makes a name absolute on Windows.
    two = np.flatnonzero(lengths >= 2)
    if len(two):
        second = blob[starts[two] + 1] == ord(":")
        bad[two[second]] = True
    return bad


# --------------------------------------------------------------------------------------------
# Local headers
# --------------------------------------------------------------------------------------------


def parse_local_header(buf: bytes, header_offset: int) -> int:
    """The file offset of an entry's data, from the first 30 bytes of its local header."""
    if len(buf) < R.LOCAL.size:
        raise CorruptArchiveError(
            f"local header at offset {header_offset} is cut off by the end of the file"
        )
    sig, *_rest, nlen, elen = R.LOCAL.unpack_from(buf, 0)
    if sig != R.SIG_LOCAL:
        raise CorruptArchiveError(f"bad local header signature at offset {header_offset}")
    return header_offset + R.LOCAL.size + nlen + elen


def local_header_name(buf: bytes, header_offset: int) -> bytes | NeedBytes:
    """The name an entry's local header gives (``buf``: bytes from the header on), or the
    bytes still needed to see it whole."""
    if len(buf) < R.LOCAL.size:
        return NeedBytes(header_offset, R.LOCAL.size)
    sig, *_rest, nlen, _elen = R.LOCAL.unpack_from(buf, 0)
    if sig != R.SIG_LOCAL:
        raise CorruptArchiveError(f"bad local header signature at offset {header_offset}")
    if len(buf) < R.LOCAL.size + nlen:
        return NeedBytes(header_offset, R.LOCAL.size + nlen)
    return bytes(buf[R.LOCAL.size: R.LOCAL.size + nlen])
