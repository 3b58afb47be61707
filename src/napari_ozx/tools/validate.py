"""RFC-9 conformance checks of an archive, as data.

:func:`validate` answers a :class:`Report`: a list of :class:`Finding` (level ``"error"`` or
``"warning"``, a stable ``code``, the entry concerned, a message).  The ZIP records are read by
the core in :mod:`napari_ozx.zip` (never parsed a second time here); this module only judges
what the core reports.

Errors: not a ZIP, unreadable records, multi-part archive, root ``zarr.json`` missing or not at
the root, root not OME-Zarr, archive inside the archive, ``jsonFirst`` claimed but false,
duplicate names, unsafe names, encrypted entries, invalid ``zarr.json``, comment version
differing from the root metadata, a central-directory name differing from its local header's,
CRC-32 mismatches (with ``crc=True``; each central-directory record against its own bytes, so
a name present twice is checked twice, each copy against its own CRC).
Warnings: no or invalid comment, no ZIP64 end records, ZIP-level compression, metadata not
first / not breadth-first, file name not ``.ozx``, unsharded arrays with many chunks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import MultiPartArchiveError, NotAZipError, OzxError, UnsupportedFeatureError
from ..zip import ZipArchive, records
from ..zip._io import crc32, streamed_crc32
from ..zip.names import UNSAFE_RULE

__all__ = ["Finding", "Report", "validate", "ERROR", "WARNING"]

ERROR = "error"
WARNING = "warning"

#: An unsharded array with more chunks than this is worth a warning (one entry per chunk).
MANY_CHUNKS = 1024
#: Findings of one kind listed one by one; the rest are counted in a summary finding.
MAX_LISTED = 10
_NESTED_SUFFIXES = (".zip", ".ozx", ".zipx", ".7z", ".jar")
_CRC_BLOCK = 1 << 20


@dataclass(frozen=True)
class Finding:
    level: str  #: "error" or "warning"
    code: str  #: stable identifier of the check, e.g. "duplicate-name"
    message: str
    entry: str | None = None

    def __str__(self) -> str:
        where = f" [{self.entry}]" if self.entry is not None else ""
        return f"{self.level}: {self.code}{where}: {self.message}"


@dataclass
class Report:
    archive: str
    findings: list[Finding] = field(default_factory=list)
    entries: int | None = None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    def ok(self, *, strict: bool = False) -> bool:
        return not self.errors and not (strict and self.warnings)

    def codes(self, level: str | None = None) -> set[str]:
        return {f.code for f in self.findings if level is None or f.level == level}

    def to_dict(self) -> dict:
        return {
            "archive": self.archive,
            "entries": self.entries,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }


class _Collector:
    def __init__(self, report: Report):
        self.report = report

    def add(self, level: str, code: str, message: str, entry: str | None = None) -> None:
        self.report.findings.append(Finding(level, code, message, entry))

    def many(self, level: str, code: str, entries: list[str], message: str,
             total: int | None = None) -> None:
        """One finding per entry for the first few, then one that counts the rest."""
        total = len(entries) if total is None else total
        for name in entries[:MAX_LISTED]:
            self.add(level, code, message, name)
        if total > MAX_LISTED:
            self.add(level, code, f"{message} ({total - MAX_LISTED} more entries)")


def validate(
    path: str | os.PathLike,
    *,
    crc: bool = False,
    many_chunks: int = MANY_CHUNKS,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Check the archive at ``path`` against RFC-9.  ``crc``: re-read every entry and check
    its CRC-32 (``progress`` is called with the number of bytes read as they are)."""
    path = os.fspath(path)
    report = Report(archive=path)
    out = _Collector(report)
    if not os.path.isfile(path):
        what = "is a directory, not an archive" if os.path.isdir(path) else "no such file"
        out.add(ERROR, "not-a-zip", what)
        return report
    if not path.lower().endswith(".ozx"):
        out.add(WARNING, "not-ozx", "file name does not end in .ozx")
    try:
        archive = ZipArchive(path, verify_crc=False, warn=False)
    except NotAZipError as e:
        out.add(ERROR, "not-a-zip", e.message)
        return report
    except UnsupportedFeatureError as e:
        out.add(ERROR, _unsupported_code(e), e.message)
        return report
    except OzxError as e:
        out.add(ERROR, "corrupt", e.message, e.entry)
        return report
    with archive:
        try:
            _check(archive, out, crc=crc, many_chunks=many_chunks, progress=progress)
        except UnsupportedFeatureError as e:
            out.add(ERROR, _unsupported_code(e), e.message, e.entry)
        except OzxError as e:
            out.add(ERROR, "corrupt", e.message, e.entry)
    return report


def _unsupported_code(e: UnsupportedFeatureError) -> str:
    return "multi-part" if isinstance(e, MultiPartArchiveError) else "unsupported"


def _check(archive: ZipArchive, out: _Collector, *, crc: bool, many_chunks: int,
           progress) -> None:
    end = archive.end
    out.report.entries = end.entries
    if archive.source.size >= 4 and archive.source.read(0, 4) == b"PK\x07\x08":
        out.add(ERROR, "multi-part", "starts with the split-archive marker PK\\x07\\x08")
    # ---- archive comment and end records
    comment = archive.comment
    if comment.problem:
        code = "no-comment" if not comment.raw else "invalid-comment"
        out.add(WARNING, code, comment.problem + ' (RFC-9: at least {"ome": {"version": ...}})')
    if not end.zip64:
        out.add(WARNING, "no-zip64", "no ZIP64 end-of-central-directory record and locator "
                "(RFC-9 recommends ZIP64 whatever the size)")

    index = archive.full_index()  # every check below needs the whole directory

    def names_of(rows) -> list[str]:
        return [index.name(int(r)) for r in rows]

    # ---- names
    if archive.duplicates:
        out.many(ERROR, "duplicate-name", archive.duplicates, "name occurs more than once")
    if archive.n_unsafe:
        out.many(ERROR, "unsafe-name", archive.unsafe_names,
                 f"unsafe entry name ({UNSAFE_RULE})", archive.n_unsafe)
    nested = _rows_with_suffix(index, _NESTED_SUFFIXES)
    if len(nested):
        out.many(ERROR, "archive-in-archive", names_of(nested[:MAX_LISTED]),
                 "an archive inside the archive", len(nested))

    # ---- methods and flags
    method = np.asarray(index.method)
    encryption_flags = records.FLAG_ENCRYPTED | records.FLAG_STRONG_ENCRYPTION
    enc_mask = (np.asarray(index.flags) & encryption_flags) != 0
    encrypted = np.flatnonzero(enc_mask | (method == records.METHOD_AES))
    if len(encrypted):
        out.many(ERROR, "encrypted", names_of(encrypted[:MAX_LISTED]), "entry is encrypted",
                 len(encrypted))
    compressed = np.flatnonzero((method != records.METHOD_STORED) & (method != records.METHOD_AES))
    if len(compressed):
        methods = sorted({records.method_name(int(m)) for m in np.unique(method[compressed])})
        out.many(WARNING, "compressed", names_of(compressed[:MAX_LISTED]),
                 f"ZIP-level compression ({', '.join(methods)}); RFC-9 recommends STORED",
                 len(compressed))

    # ---- root and order
    is_meta = np.asarray(index.is_metadata, dtype=bool)
    meta_rows = np.flatnonzero(is_meta)
    meta_names = names_of(meta_rows)
    root_row = index.lookup("zarr.json")
    root_meta = None
    if root_row is None:
        v3 = sorted((nm for nm in meta_names if nm.endswith("/zarr.json")),
                    key=lambda s: (s.count("/"), s))
        v2 = [nm for nm in meta_names if nm.rsplit("/", 1)[-1] in (".zgroup", ".zarray")]
        if v3:
            out.add(ERROR, "root-not-at-root",
                    "the hierarchy's root zarr.json is in a sub-folder; RFC-9 needs it at the "
                    "archive root", v3[0])
        elif v2:
            out.add(ERROR, "root-missing", "no root zarr.json: a Zarr v2 hierarchy (OME-Zarr "
                    "0.4 or older), not an RFC-9 OME-Zarr archive", v2[0])
        else:
            out.add(ERROR, "root-missing", "no zarr.json at the archive root")
    else:
        if root_row != 0:
            out.add(WARNING, "not-breadth-first",
                    "root zarr.json is not the first entry of the central directory", "zarr.json")
        offsets = index.header_offset
        if int(offsets[root_row]) != int(offsets.min()):
            out.add(WARNING, "not-breadth-first",
                    "root zarr.json is not the first entry in the file", "zarr.json")
    _check_order(index, is_meta, meta_rows, meta_names, out)
    if comment.json_first and archive.json_first_violations:
        out.many(ERROR, "json-first-false", archive.json_first_violations,
                 "comment claims jsonFirst, but this metadata entry follows a data entry")

    # ---- metadata documents
    for name in meta_names:
        if name.rsplit("/", 1)[-1] != "zarr.json":
            continue
        try:
            raw = archive.read(name)
        except OzxError as e:
            out.add(ERROR, "corrupt", e.message, name)
            continue
        if raw is None:  # (listed by the index just now: cannot be absent)
            continue
        doc = _check_zarr_json(raw, name, out)
        if doc is None:
            continue
        if name == "zarr.json":
            root_meta = doc
        if doc.get("node_type") == "array":
            _check_chunking(doc, name, out, many_chunks)
    if root_meta is not None:
        ome = root_meta.get("attributes", {}).get("ome")
        if not isinstance(ome, dict):
            out.add(ERROR, "root-not-ome",
                    "root zarr.json has no attributes.ome: not an OME-Zarr hierarchy", "zarr.json")
        else:
            version = ome.get("version")
            if comment.version is not None and version is not None and comment.version != version:
                out.add(ERROR, "version-mismatch",
                        f"comment says OME-Zarr {comment.version!r}, root metadata says "
                        f"{version!r}", "zarr.json")

    _check_local_names(archive, index, out)
    if crc:
        _check_data(archive, index, out, progress)


_HEADER_WINDOW = 1 << 20


def _check_local_names(archive: ZipArchive, index, out: _Collector) -> None:
    """Every central-directory name against the name in its entry's local header (a mangled
    directory name would otherwise turn a chunk silently into fill value).  Headers are read
    in file order, many per read where entries are small."""
    from ..zip.entry import local_header_name
    from ..zip.records import NeedBytes

    offsets = np.asarray(index.header_offset, dtype=np.int64)
    order = np.argsort(offsets, kind="stable")
    limit = archive.end.cd_offset
    window, at = b"", 0
    bad = []
    for row in order:
        row = int(row)
        hoff = int(offsets[row])
        name = index.name(row)
        want = records.LOCAL.size + int(index.name_length[row])
        if hoff + want > limit:
            continue  # reported by the reads (data runs into the central directory)
        if not (at <= hoff and hoff + want <= at + len(window)):
            at = hoff
            window = archive.source.read(hoff, min(max(_HEADER_WINDOW, want), limit - hoff))
        try:
            got = local_header_name(memoryview(window)[hoff - at:], hoff)
        except OzxError as e:
            out.add(ERROR, "corrupt", e.message, name)
            continue
        if isinstance(got, bytes) and not int(index.flags[row]) & records.FLAG_UTF8:
            got = got.decode("cp437").encode("utf-8")  # as the directory's names are read
        if isinstance(got, NeedBytes) or got != index._name_bytes(row):
            bad.append((name, got))
    for name, got in bad[:MAX_LISTED]:
        shown = got.decode("utf-8", "replace") if isinstance(got, bytes) else "(cut off)"
        out.add(ERROR, "name-mismatch", f"the local header names this entry {shown!r}", name)
    if len(bad) > MAX_LISTED:
        out.add(ERROR, "name-mismatch",
                f"{len(bad) - MAX_LISTED} more entries whose local header gives another name")


def _check_order(index, is_meta: np.ndarray, meta_rows: np.ndarray, meta_names: list[str],
                 out: _Collector) -> None:
    """Metadata before every other entry, breadth-first (never deeper, then shallower)."""
    data_rows = np.flatnonzero(~is_meta)
    if len(data_rows):
        first_data = int(data_rows[0])
        late = [nm for r, nm in zip(meta_rows, meta_names, strict=True) if r > first_data]
        if late:
            out.many(WARNING, "not-breadth-first", late,
                     f"metadata entry after the data entry {index.name(first_data)!r}; RFC-9 "
                     "puts every zarr.json first")
    depth = -1
    for name in meta_names:
        d = name.count("/")
        if d < depth:
            out.add(WARNING, "not-breadth-first",
                    "metadata entry is shallower than one before it (not breadth-first)", name)
            break
        depth = d


def _rows_with_suffix(index, suffixes: tuple[str, ...]) -> np.ndarray:
    """Rows whose name ends with one of ``suffixes`` (ASCII, case-insensitive)."""
    blob = np.frombuffer(index.names, dtype=np.uint8)
    starts = np.asarray(index.name_start, dtype=np.int64)
    lengths = np.asarray(index.name_length, dtype=np.int64)
    ends = starts + lengths
    hit = np.zeros(len(starts), dtype=bool)
    for suffix in suffixes:
        want = np.frombuffer(suffix.lower().encode(), dtype=np.uint8)
        k = len(want)
        cand = np.flatnonzero(lengths >= k)
        for j in range(k):
            if not len(cand):
                break
            c = blob[ends[cand] - k + j]
            c = np.where((c >= ord("A")) & (c <= ord("Z")), c | 0x20, c)
            cand = cand[c == want[j]]
        hit[cand] = True
    return np.flatnonzero(hit)


def _check_zarr_json(raw: bytes, name: str, out: _Collector) -> dict | None:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        out.add(ERROR, "invalid-zarr-json", f"not UTF-8 JSON ({e})", name)
        return None
    if not isinstance(doc, dict):
        out.add(ERROR, "invalid-zarr-json", "not a JSON object", name)
        return None
    if doc.get("zarr_format") != 3:
        out.add(ERROR, "invalid-zarr-json",
                f"zarr_format is {doc.get('zarr_format')!r}, not 3", name)
        return None
    kind = doc.get("node_type")
    if kind not in ("group", "array"):
        out.add(ERROR, "invalid-zarr-json", f"node_type is {kind!r}, not group or array", name)
        return None
    if kind == "array":
        missing = [k for k in ("shape", "data_type", "chunk_grid", "chunk_key_encoding",
                               "codecs", "fill_value") if k not in doc]
        if missing:
            out.add(ERROR, "invalid-zarr-json", f"array metadata lacks {', '.join(missing)}",
                    name)
            return None
    return doc


def _check_chunking(doc: dict, name: str, out: _Collector, many_chunks: int) -> None:
    codecs = doc.get("codecs") or []
    if any(isinstance(c, dict) and c.get("name") == "sharding_indexed" for c in codecs):
        return
    try:
        shape = doc["shape"]
        chunks = doc["chunk_grid"]["configuration"]["chunk_shape"]
        count = math.prod(-(-int(s) // max(int(c), 1)) for s, c in
                          zip(shape, chunks, strict=False))  # a malformed doc may differ
    except (KeyError, TypeError, ValueError):
        return
    if count > many_chunks:
        out.add(WARNING, "many-unsharded-chunks",
                f"unsharded array of {count} chunks (one entry each); RFC-9 recommends sharding",
                name)


def _stored_crc(archive: ZipArchive, row: int, size: int, progress) -> tuple[int, bytes]:
    """CRC-32 and first four bytes of a STORED entry, read in blocks."""
    head = b""

    def each(block: bytes) -> None:
        nonlocal head
        if not head:
            head = block[:4]
        if progress is not None:
            progress(len(block))

    crc = streamed_crc32(lambda a, b: archive.read_row(row, a, b), size, _CRC_BLOCK, each)
    return crc, head


def _check_data(archive: ZipArchive, index, out: _Collector, progress) -> None:
    """Read every entry back: CRC-32, and archives hidden under innocent names."""
    bad, nested = [], []
    for i in range(len(index)):  # every record, duplicates too: each with its own bytes
        name = index.name(i)
        if int(index.flags[i]) & (records.FLAG_ENCRYPTED | records.FLAG_STRONG_ENCRYPTION):
            continue
        size = int(index.uncompressed_size[i])
        want = int(index.crc32[i])
        try:
            if int(index.method[i]) == records.METHOD_STORED:
                got, head = _stored_crc(archive, i, size, progress)
            else:
                data = archive.read_row(i)
                head = data[:4]
                got = crc32(data)
                if progress is not None:
                    progress(int(index.compressed_size[i]))
        except OzxError as e:
            out.add(ERROR, "corrupt", e.message, name)
            continue
        if got != want:
            bad.append((name, got, want))
        if head == records.SIG_LOCAL and not name.lower().endswith(_NESTED_SUFFIXES):
            nested.append(name)
    for name, got, want in bad[:MAX_LISTED]:
        out.add(ERROR, "crc-mismatch", f"CRC-32 of the data is {got:08x}, the directory says "
                f"{want:08x}", name)
    if len(bad) > MAX_LISTED:
        out.add(ERROR, "crc-mismatch", f"{len(bad) - MAX_LISTED} more entries fail their CRC-32")
    if nested:
        out.many(ERROR, "archive-in-archive", nested, "entry holds a ZIP archive")
