"""The central directory, decoded in blocks with numpy.

A block of bytes goes in, columns of fields come out (:class:`CentralBlock`), without a Python
object per entry: a million-entry directory decodes in well under a second.  The rules a name is
judged by are :mod:`.names`'s (applied here vectorised, and tested against the scalar rules);
the hash the index sorts by is :mod:`.namehash`'s.  Sans-IO: the caller reads the block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import CorruptArchiveError, MultiPartArchiveError
from . import records
from .namehash import hash_matrix, hash_names
from .names import METADATA_BASENAMES

__all__ = ["CentralBlock", "parse_central_block", "PAD"]


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
_MATRIX_WIDTH = _PAD - records.CENTRAL.size  # names up to this long are gathered as a 2-D matrix


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
    hdr = _rows(a, positions, records.CENTRAL.size).view(records.CENTRAL_DTYPE)[:, 0]
    nlen = hdr["name_length"].astype(np.int64)
    elen = hdr["extra_length"].astype(np.int64)
    name_pos = positions + records.CENTRAL.size

    # Which entries are metadata or directories, read straight from the raw name bytes.
    is_meta = _endswith_metadata(a, name_pos, nlen)
    last = a[name_pos + np.maximum(nlen - 1, 0)]
    is_dir_all = (nlen > 0) & (last == ord("/"))
    count = len(positions)
    consumed = int(positions[-1] + records.CENTRAL.size + nlen[-1] + elen[-1]
                   + hdr["comment_length"][-1])
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
    matrix: np.ndarray | None
    mask: np.ndarray | None
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
        not_utf8 = owner[(flags[owner] & records.FLAG_UTF8) == 0]
        cp437 = np.asarray(sorted(set(not_utf8.tolist())), np.int64)
        if len(cp437):
            unsafe = _unsafe_names(blob, blob_start, nlen)
            blob, nlen, blob_start = _recode_cp437(blob, nlen, blob_start, cp437)
            # A cp437 name grows up to 3x in UTF-8: past 65,535 bytes (what a ZIP name field
            # holds, and the index column) it is refused, never served under a cut-off name.
            unsafe |= nlen > records.U16_MAX
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
        (usize == records.U32_MAX) | (csize == records.U32_MAX) | (hoff == records.U32_MAX)
        | (disk == records.U16_MAX)
    )
    if len(need64):
        _apply_zip64(a, positions, nlen_raw=hdr["name_length"].astype(np.int64), elen=elen,
                     rows=need64, usize=usize, csize=csize, hoff=hoff, disk=disk)
    if np.any(disk[keep] != 0):
        raise MultiPartArchiveError("multi-part (split) archive: entry data on another disk")

    sel_len = nlen[keep]
    new_start = np.cumsum(sel_len) - sel_len
    all_kept = len(keep) == len(nlen)
    if matrix is not None and mask is not None:
        km, kmask = (matrix, mask) if all_kept else (matrix[keep], mask[keep])
        names = blob.tobytes() if all_kept else km[kmask].tobytes()
        hashes = hash_matrix(km, kmask, sel_len)
    else:
        if all_kept:
            names = blob.tobytes()
        else:
            kept_total = int(sel_len.sum())
            idx = np.repeat(blob_start[keep] - new_start, sel_len) + np.arange(kept_total)
            names = blob[idx].tobytes()
        hashes = hash_names(np.frombuffer(names, dtype=np.uint8), new_start, sel_len)
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
        + records.CENTRAL.size
        + _u16(a, pos + 28)
        + _u16(a, pos + 30)
        + _u16(a, pos + 32)
    )


def _chain(a: np.ndarray, final: bool) -> np.ndarray:
    """Offsets of the whole headers that follow each other from offset 0 of ``a``."""
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cands = _find_signatures(a, records.SIG_CENTRAL)
    if len(cands) == 0 or cands[0] != 0:
        if final or n >= records.MAX_CENTRAL_HEADER:
            raise CorruptArchiveError("bad central-directory header signature")
        return np.zeros(0, dtype=np.int64)
    cands = cands[cands + records.CENTRAL.size <= n]
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
    elif len(chain) and int(chain_ends[-1]) + records.CENTRAL.size <= n:
        # The next header starts inside this block, so its signature must be there.
        e = int(chain_ends[-1])
        if bytes(a[e : e + 4]) != records.SIG_CENTRAL:
            raise CorruptArchiveError(
                f"bad central-directory header signature at central-directory offset {e}"
            )
    return chain


def _apply_zip64(a, positions, *, nlen_raw, elen, rows, usize, csize, hoff, disk):
    """Fill saturated fields of ``rows`` from their ZIP64 extended-information extra field."""
    start = positions[rows] + records.CENTRAL.size + nlen_raw[rows]
    limit = start + elen[rows]
    need_u = usize[rows] == records.U32_MAX
    need_c = csize[rows] == records.U32_MAX
    need_o = hoff[rows] == records.U32_MAX
    need_d = disk[rows] == records.U16_MAX
    needed = need_u.astype(np.int64) * 8 + need_c * 8 + need_o * 8 + need_d * 4
    # Fast path: the ZIP64 field is the first extra field (as every common writer puts it).
    ok = start + 4 <= limit
    first_id = np.where(ok, _u16(a, np.where(ok, start, 0)), -1)
    first_len = np.where(ok, _u16(a, np.where(ok, start + 2, 0)), -1)
    fast = (ok & (first_id == records.ZIP64_EXTRA_ID) & (first_len >= needed)
            & (start + 4 + first_len <= limit))
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
            if fid == records.ZIP64_EXTRA_ID:
                found = (p + 4, flen)
                break
            p += 4 + flen
        if found is None or found[1] < needed[r]:
            raise CorruptArchiveError(
                "central-directory header has 0xFFFFFFFF sizes or offset but no ZIP64 extra field"
            )
        body[r] = found[0]
    off = body.copy()
    # The 8-byte values that are present follow each other in this order (APPNOTE 4.5.3).
    for need, column in ((need_u, usize), (need_c, csize), (need_o, hoff)):
        sel = np.flatnonzero(need)
        if len(sel):
            column[rows[sel]] = _u64(a, off[sel])
        off += need * 8
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
        # Both dots in the same name: names lie back to back in ``blob``, so "." followed by
        # "./x" would otherwise read as a ".." segment and hide the safe name ".".
        within = after <= end
        seg_end = (after == end) | (blob[np.minimum(after, len(blob) - 1)] == ord("/"))
        bad[own[within & seg_start & seg_end]] = True
    # A drive letter ("C:") makes a name absolute on Windows.
    two = np.flatnonzero(lengths >= 2)
    if len(two):
        second = blob[starts[two] + 1] == ord(":")
        bad[two[second]] = True
    return bad
