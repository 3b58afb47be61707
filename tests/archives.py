"""Builders of test archives, shared by every test module (``from archives import ...``).

Real archives from other tools (the stdlib ``zipfile``, Info-ZIP ``zip``, ngff-zarr) and a fast raw
writer of our own for what those tools cannot make quickly: hundreds of thousands of entries,
entries beyond 4 GiB (sparse files), duplicates, unsafe names, odd flags.

Every builder returns the path it wrote; hierarchy builders return the arrays they stored so a
test can compare pixels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from helpers import random_pixels
from napari_ozx.zip import ByteSource, LocalFile, records

# --------------------------------------------------------------------------------------------
# RFC-9 archive comments
# --------------------------------------------------------------------------------------------

COMMENT_PLAIN = json.dumps({"ome": {"version": "0.5"}}).encode()
COMMENT_JSON_FIRST = json.dumps(
    {"ome": {"version": "0.5", "zipFile": {"centralDirectory": {"jsonFirst": True}}}}
).encode()


#: The root ``zarr.json`` of an OME-Zarr 0.5 group that holds nothing yet.
ROOT_META = json.dumps(
    {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5"}}}
).encode()
#: ``zarr.json`` of a 4 x 4 uint8 array in one uncompressed chunk, and that chunk's bytes.
SMALL_ARRAY_META = json.dumps(
    {
        "zarr_format": 3, "node_type": "array", "shape": [4, 4], "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0, "codecs": [{"name": "bytes"}],
    }
).encode()
SMALL_CHUNK = bytes(range(16))


# --------------------------------------------------------------------------------------------
# Zarr hierarchies on disk (the content that gets zipped)
# --------------------------------------------------------------------------------------------


def make_v3_hierarchy(root: Path, *, shards: str | None = None) -> dict[str, np.ndarray]:
    """A small Zarr v3 OME-style hierarchy under ``root``; returns {array path: pixels}.

    ``shards``: None (plain chunks), ``"end"`` or ``"start"`` (sharding codec with the shard
    index at the end or at the start of each shard).
    """
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    g = zarr.open_group(str(root), mode="w", zarr_format=3)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}]}]}
    shard_arg = None
    if shards is not None:
        shard_arg = {"shape": (32, 32), "index_location": shards}
    expected = {}
    a0 = random_pixels((64, 80), seed=1, high=60000)
    arr = g.create_array("0", shape=a0.shape, chunks=(16, 16), shards=shard_arg, dtype=a0.dtype)
    arr[:] = a0
    expected["0"] = a0
    a1 = random_pixels((32, 40), seed=2, dtype="uint8", high=60000)
    arr = g.create_array("1", shape=a1.shape, chunks=(16, 16), shards=shard_arg, dtype=a1.dtype)
    arr[:] = a1
    expected["1"] = a1
    sub = g.create_group("labels")
    sub.attrs["ome"] = {"version": "0.5", "labels": ["cells"]}
    cells = sub.create_group("cells")
    a2 = (random_pixels((3, 20, 24), seed=3, dtype="uint32", high=60000) % 7).astype("uint32")
    arr = cells.create_array("0", shape=a2.shape, chunks=(1, 10, 12), dtype=a2.dtype)
    arr[:] = a2
    expected["labels/cells/0"] = a2
    return expected


PLATE_ROWS, PLATE_COLS = ["A", "B"], ["1", "2", "3"]
PLATE_WELLS = ["A/1", "A/3", "B/2"]  # the others are empty


def write_plate(root: Path, *, name: str, field_shape: tuple[int, int], chunk: int,
                labels: bool = False) -> tuple[dict, dict]:
    """An HCS plate by ome-zarr-py under ``root``: rows ``PLATE_ROWS`` x columns ``PLATE_COLS``,
    wells ``PLATE_WELLS`` of two fields each, every field a 2-channel ``cyx`` image (two levels)
    filled with ``100 * (i + 1) + field`` for the i-th well.  With ``labels``, every field also
    has a ``cells`` label image: one rectangle of value ``i + 1``, coloured red.

    Returns ({(well, field): image}, {(well, field): label image})."""
    from ome_zarr.writer import write_image, write_labels, write_plate_metadata, write_well_metadata

    plate = zarr.open_group(str(root), mode="w")
    write_plate_metadata(plate, PLATE_ROWS, PLATE_COLS, PLATE_WELLS, field_count=2, name=name)
    images, masks = {}, {}
    h, w = field_shape
    for i, well in enumerate(PLATE_WELLS):
        row, col = well.split("/")
        wg = plate.require_group(row).require_group(col)
        write_well_metadata(wg, ["0", "1"])
        for f in range(2):
            fg = wg.require_group(str(f))
            data = np.full((2, h, w), 100 * (i + 1) + f, dtype="uint16")
            write_image(data, fg, axes="cyx", scale_factors=(2,),
                        storage_options={"chunks": (1, chunk, chunk)})
            images[(well, f)] = data
            if labels:
                mask = np.zeros((h, w), dtype="uint32")
                mask[8:40, 10 + 10 * i:50 + 10 * i] = i + 1
                write_labels(mask, fg, name="cells", axes="yx", scale_factors=(2,),
                             label_metadata={"colors": [{"label-value": i + 1,
                                                         "rgba": [255, 0, 0, 255]}]})
                masks[(well, f)] = mask
    return images, masks


def make_v2_hierarchy(root: Path) -> dict[str, np.ndarray]:
    """A Zarr v2 hierarchy (what zipped OME-Zarr 0.4 holds); returns {array path: pixels}."""
    root = Path(root)
    if root.exists():
        shutil.rmtree(root)
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}]}]
    expected = {}
    a0 = random_pixels((50, 60), seed=4, high=60000)
    arr = g.create_array("0", shape=a0.shape, chunks=(16, 16), dtype=a0.dtype)
    arr[:] = a0
    expected["0"] = a0
    sub = g.create_group("sub")
    a1 = random_pixels((7, 9), seed=5, dtype="float32", high=60000)
    arr = sub.create_array("x", shape=a1.shape, chunks=(4, 4), dtype=a1.dtype)
    arr[:] = a1
    expected["sub/x"] = a1
    return expected


def tree_files(root: Path, *, json_first: bool = True) -> list[str]:
    """Relative '/'-separated names of the files under ``root``.

    With ``json_first``, metadata files first, breadth-first (RFC-9 order), then the rest.
    """
    root = Path(root)
    names = [
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
    ]
    meta_names = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")

    def key(n: str):
        is_meta = n.rsplit("/", 1)[-1] in meta_names
        if json_first:
            return (not is_meta, n.count("/") if is_meta else 0, n)
        return (n,)

    return sorted(names, key=key)


# --------------------------------------------------------------------------------------------
# Archives made by other tools
# --------------------------------------------------------------------------------------------


def zip_stdlib(
    src: Path,
    out: Path,
    *,
    compression: int = zipfile.ZIP_STORED,
    force_zip64: bool = False,
    comment: bytes | None = COMMENT_JSON_FIRST,
    json_first: bool = True,
    names: list[str] | None = None,
) -> Path:
    """Zip the files under ``src`` with the stdlib ``zipfile`` (root ``zarr.json`` first)."""
    src, out = Path(src), Path(out)
    names = tree_files(src, json_first=json_first) if names is None else names
    with zipfile.ZipFile(out, "w", compression=compression, allowZip64=True) as zf:
        for name in names:
            data = (src / name).read_bytes()
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)
        if comment is not None:
            zf.comment = comment
    return out


def zip_infozip(src: Path, out: Path, *, extra_args: Iterable[str] = ()) -> Path:
    """Zip the files under ``src`` with Info-ZIP ``zip -0 -r`` (Debian package ``zip``)."""
    src, out = Path(src), Path(out).resolve()
    if out.exists():
        out.unlink()
    subprocess.run(
        ["zip", "-0", "-r", "-q", "-X", *extra_args, str(out), "."],
        cwd=src,
        check=True,
    )
    return out


def zip_infozip_stream(src: Path, out: Path, *, extra_args: Iterable[str] = ()) -> Path:
    """Info-ZIP writing to a pipe (``zip -0 -r - . | cat``): entries carry data descriptors
    (flag bit 3) and their local headers hold no sizes."""
    src, out = Path(src), Path(out).resolve()
    with open(out, "wb") as f:
        zp = subprocess.Popen(["zip", "-0", "-r", "-q", *extra_args, "-", "."], cwd=src,
                              stdout=subprocess.PIPE)
        cat = subprocess.run(["cat"], stdin=zp.stdout, stdout=f, check=True)
        zp.stdout.close()
        assert zp.wait() == 0 and cat.returncode == 0
    return out


def zip_7z(src: Path, out: Path, *, level: int = 0) -> Path:
    """p7zip's ZIP writer (``7z a -tzip -mx=<level>``; 0 stores, higher levels deflate)."""
    src, out = Path(src), Path(out).resolve()
    if out.exists():
        out.unlink()
    subprocess.run(["7z", "a", "-tzip", f"-mx={level}", str(out), "."], cwd=src, check=True,
                   stdout=subprocess.DEVNULL)
    return out


class _Unseekable:
    """A write-only stream: makes the stdlib write data descriptors."""

    def __init__(self, f):
        self._f = f

    def write(self, b):
        return self._f.write(b)

    def flush(self):
        self._f.flush()


def zip_stdlib_unseekable(src: Path, out: Path, *, compression: int = zipfile.ZIP_STORED) -> Path:
    """The stdlib writing to an unseekable stream: data descriptors, sizes only at the end."""
    src, out = Path(src), Path(out)
    with open(out, "wb") as raw:
        with zipfile.ZipFile(_Unseekable(raw), "w", compression=compression) as zf:
            for name in tree_files(src):
                zf.write(src / name, name)
            zf.comment = COMMENT_JSON_FIRST
    return out


def ngff_zarr_archive(out: Path, data: np.ndarray, dims=("y", "x"), **kwargs) -> Path:
    """An ``.ozx`` written by ngff-zarr's own ``to_ngff_zarr("x.ozx", ...)``."""
    import ngff_zarr as nz

    image = nz.to_ngff_image(data, dims=list(dims))
    ms = nz.to_multiscales(image, scale_factors=kwargs.pop("scale_factors", [2]))
    nz.to_ngff_zarr(str(out), ms, version="0.5", **kwargs)
    return Path(out)


# --------------------------------------------------------------------------------------------
# Our raw writer: records straight from napari_ozx.zip.records
# --------------------------------------------------------------------------------------------


@dataclass
class RawEntry:
    """One entry for :func:`write_raw_zip`.  ``name`` bytes are written as given."""

    name: str | bytes
    data: bytes = b""
    method: int = records.METHOD_STORED
    flags: int | None = None  #: default: UTF-8 flag
    crc32: int | None = None  #: default: computed from the (uncompressed) payload
    uncompressed_size: int | None = None  #: default: len(payload before compression)
    payload: bytes | None = None  #: bytes as stored (default: ``data``, deflated if method 8)
    local_name: bytes | None = None  #: a different name in the local header
    local_extra: bytes = b""  #: extra field bytes in the local header only
    central_extra: bytes = b""  #: extra fields in the central header, before the ZIP64 one
    force_zip64: bool = False  #: ZIP64 extra (all three values) even when they fit
    sparse_size: int | None = None  #: STORED data of this many bytes: ``data`` then a hole


def deflate_raw(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def write_raw_zip(
    path: Path,
    entries: Iterable[RawEntry | tuple[str | bytes, bytes]],
    *,
    comment: bytes = COMMENT_JSON_FIRST,
    zip64: bool | str = "auto",
    start_offset: int = 0,
    prefix: bytes = b"",
    chunk_entries: int = 65536,
) -> Path:
    """Write a ZIP archive record by record; fast enough for millions of entries.

    ``zip64``: ``True`` writes ZIP64 extra fields for every entry and the ZIP64 end records
    (what RFC-9 recommends), ``"auto"`` only where a value does not fit 32 bits, ``False`` never
    (values must fit).  ``start_offset``: leave a hole of that many bytes before the first entry
    (a sparse file: offsets beyond 4 GiB cost no disk).  ``prefix``: bytes written before the
    archive whose offsets do not count them (like a self-extractor stub).
    """
    path = Path(path)
    CENTRAL, LOCAL = records.CENTRAL, records.LOCAL
    utf8 = records.FLAG_UTF8
    central: list[bytes] = []
    n = 0
    force = zip64 is True
    with open(path, "wb") as f:
        if prefix:
            f.write(prefix)
        base = len(prefix)
        pos = start_offset  # offset within the archive (prefix excluded)
        if start_offset:
            f.seek(base + start_offset)
        out: list[bytes] = []
        for e in entries:
            if isinstance(e, tuple):
                name, data = e
                nb = name.encode() if isinstance(name, str) else name
                crc = zlib.crc32(data)
                size = len(data)
                if force or pos > 0xFFFFFFFE:
                    ext_c = (records.zip64_extra(size, size, pos) if force
                             else records.zip64_extra(pos))
                    ext_l = records.zip64_extra(size, size) if force else b""
                    s32 = records.U32_MAX if force else size
                    o32 = records.U32_MAX
                else:
                    ext_c = ext_l = b""
                    s32, o32 = size, pos
                hdr = LOCAL.pack(records.SIG_LOCAL, 45, utf8, 0, 0, 0x21, crc, s32, s32, len(nb),
                                 len(ext_l))
                out.append(hdr)
                out.append(nb)
                out.append(ext_l)
                out.append(data)
                central.append(
                    CENTRAL.pack(
                        records.SIG_CENTRAL, (3 << 8) | 45, 45, utf8, 0, 0, 0x21, crc, s32, s32,
                        len(nb), len(ext_c), 0, 0, 0, 0o100644 << 16, o32,
                    )
                    + nb
                    + ext_c
                )
                pos += LOCAL.size + len(nb) + len(ext_l) + size
            else:
                f.write(b"".join(out))
                out = []
                pos = _write_one(f, e, pos, base, central, force)
            n += 1
            if len(out) >= 4 * chunk_entries:
                f.write(b"".join(out))
                out = []
        f.write(b"".join(out))
        cd_offset = pos
        cd = b"".join(central)
        f.seek(base + pos)
        f.write(cd)
        use64 = force or (zip64 == "auto" and (n > 0xFFFF or cd_offset > 0xFFFFFFFE
                                                 or len(cd) > 0xFFFFFFFE))
        if use64 or n <= 0xFFFF:
            f.write(
                records.pack_end_records(
                    entries=n, cd_offset=cd_offset, cd_size=len(cd), comment=comment, zip64=use64
                )
            )
        else:
            # What pre-ZIP64 writers did with more than 65,535 entries: wrap the count.
            f.write(records.EOCD.pack(records.SIG_EOCD, 0, 0, n & 0xFFFF, n & 0xFFFF, len(cd),
                                      cd_offset, len(comment)) + comment)
    return path


def _write_one(f, e: RawEntry, pos: int, base: int, central: list[bytes], force: bool) -> int:
    nb = e.name.encode() if isinstance(e.name, str) else e.name
    flags = records.FLAG_UTF8 if e.flags is None else e.flags
    if e.payload is not None:
        payload = e.payload
    elif e.method == records.METHOD_DEFLATED:
        payload = deflate_raw(e.data)
    else:
        payload = e.data
    usize = len(e.data) if e.uncompressed_size is None else e.uncompressed_size
    csize = len(payload)
    if e.sparse_size is not None:
        csize = e.sparse_size
        usize = e.sparse_size if e.uncompressed_size is None else e.uncompressed_size
    crc = zlib.crc32(e.data) if e.crc32 is None else e.crc32
    if e.sparse_size is not None and e.crc32 is None:
        crc = crc32_zero_extend(zlib.crc32(e.data), e.sparse_size - len(e.data))
    force = force or e.force_zip64
    big = force or max(usize, csize) > 0xFFFFFFFE
    off_big = force or pos > 0xFFFFFFFE
    local_name = nb if e.local_name is None else e.local_name
    ext_l = (records.zip64_extra(usize, csize) if big else b"") + e.local_extra
    f.seek(base + pos)
    f.write(
        records.pack_local_header(
            local_name, method=e.method, crc32=crc,
            compressed_size=records.U32_MAX if big else csize,
            uncompressed_size=records.U32_MAX if big else usize,
            extra=ext_l, flags=flags,
        )
    )
    f.write(payload)
    vals = ([usize, csize] if big else []) + ([pos] if off_big else [])
    ext_c = e.central_extra + (records.zip64_extra(*vals) if vals else b"")
    central.append(
        records.pack_central_header(
            nb, method=e.method, crc32=crc,
            compressed_size=records.U32_MAX if big else csize,
            uncompressed_size=records.U32_MAX if big else usize,
            local_header_offset=records.U32_MAX if off_big else pos,
            extra=ext_c, flags=flags,
        )
    )
    return pos + records.LOCAL.size + len(local_name) + len(ext_l) + csize


# CRC-32 of data followed by n zero bytes, without touching n bytes (GF(2) matrix power,
# the method of zlib's crc32_combine).


def _gf2_times(mat: list[int], vec: int) -> int:
    s = 0
    i = 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_zero_extend(crc: int, n: int) -> int:
    """``zlib.crc32(b"\\0" * n, crc)`` computed in O(log n)."""
    if n <= 0:
        return crc
    if n < 1 << 20:
        return zlib.crc32(bytes(n), crc)
    # Operator for one zero bit, then squared up to one zero byte and beyond.
    odd = [0xEDB88320] + [1 << k for k in range(31)]
    even = _gf2_square(odd)  # 2 zero bits
    odd = _gf2_square(even)  # 4 zero bits
    crc ^= 0xFFFFFFFF
    while True:
        even = _gf2_square(odd)  # first pass: 1 zero byte
        if n & 1:
            crc = _gf2_times(even, crc)
        n >>= 1
        if not n:
            break
        odd = _gf2_square(even)
        if n & 1:
            crc = _gf2_times(odd, crc)
        n >>= 1
        if not n:
            break
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Many-entry archives (a Zarr v3 array with one tiny chunk per entry)
# --------------------------------------------------------------------------------------------

ROW = 16  #: uint16 values per chunk of the many-entry array


def many_root_meta() -> bytes:
    return ROOT_META


def many_array_meta(n_rows: int) -> bytes:
    return json.dumps(
        {
            "zarr_format": 3,
            "node_type": "array",
            "shape": [n_rows, ROW],
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, ROW]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        }
    ).encode()


def many_row(i: int) -> np.ndarray:
    """The pixels of row ``i`` of the many-entry array."""
    return (np.arange(ROW, dtype="<u2") + np.uint16(i & 0x3FFF)) * np.uint16(3)


def many_entries(n_entries: int, *, late_metadata: bool = False) -> Iterator[tuple[str, bytes]]:
    """Entries of a jsonFirst hierarchy: ``zarr.json``, ``a/zarr.json``, then chunks
    ``a/c/<i>/0``.  With ``late_metadata``, a second array ``late/zarr.json`` (one chunk) comes
    after all the chunks: the archive then lies if its comment claims ``jsonFirst``."""
    n_rows = n_entries - 2 - (2 if late_metadata else 0)
    yield "zarr.json", many_root_meta()
    yield "a/zarr.json", many_array_meta(n_rows)
    base = np.arange(ROW, dtype="<u2")
    cache = {}
    for i in range(n_rows):
        k = i & 0x3FFF
        data = cache.get(k)
        if data is None:
            data = cache[k] = ((base + np.uint16(k)) * np.uint16(3)).tobytes()
        yield f"a/c/{i}/0", data
    if late_metadata:
        yield "late/zarr.json", many_array_meta(1)
        yield "late/c/0/0", many_row(7).tobytes()


def many_entry_archive(path: Path, n_entries: int, *, late_metadata: bool = False,
                       comment: bytes = COMMENT_JSON_FIRST, zip64: bool | str = "auto") -> Path:
    return write_raw_zip(
        path, many_entries(n_entries, late_metadata=late_metadata), comment=comment, zip64=zip64
    )


def sparse_big_archive(path: Path, *, start_offset: int = (4 << 30) + 12345,
                       big_entry: int = (4 << 30) + 4096) -> tuple[Path, dict[str, bytes]]:
    """A sparse archive: entries whose local headers lie beyond 4 GiB, and one STORED entry
    larger than 4 GiB (mostly a hole).  Returns (path, {name: head bytes}); the big entry's
    bytes are its head bytes followed by zeros.  Uses a few kB of disk."""
    meta, arr, chunk = ROOT_META, SMALL_ARRAY_META, SMALL_CHUNK
    head = b"BIG-ENTRY-HEAD" * 10
    entries = [
        RawEntry("zarr.json", meta),
        RawEntry("a/zarr.json", arr),
        RawEntry("a/c/0/0", chunk),
        RawEntry("big.bin", head, sparse_size=big_entry),
        RawEntry("after-big", b"tail entry after the big one"),
    ]
    write_raw_zip(path, entries, start_offset=start_offset, zip64=True)
    return Path(path), {
        "zarr.json": meta, "a/zarr.json": arr, "a/c/0/0": chunk, "big.bin": head,
        "after-big": b"tail entry after the big one",
    }


# --------------------------------------------------------------------------------------------
# Reading an archive's structure (for tests that corrupt a precise region)
# --------------------------------------------------------------------------------------------


@dataclass
class Layout:
    """Where the records of a (valid) archive lie, from the stdlib's point of view."""

    size: int
    eocd: int
    zip64_eocd: int | None
    zip64_locator: int | None
    cd_offset: int
    cd_size: int
    local_headers: list[int]
    data_offsets: list[int]
    names: list[str]


def layout(path: Path) -> Layout:
    data = Path(path).read_bytes()
    eocd = data.rfind(records.SIG_EOCD)
    loc = eocd - records.ZIP64_LOCATOR.size
    z64 = z64loc = None
    if loc >= 0 and data[loc : loc + 4] == records.SIG_ZIP64_LOCATOR:
        z64loc = loc
        z64 = records.ZIP64_LOCATOR.unpack_from(data, loc)[2]
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        cd_offset = zf.start_dir
    local, offs = [], []
    for info in infos:
        h = info.header_offset
        nlen, elen = records.LOCAL.unpack_from(data, h)[-2:]
        local.append(h)
        offs.append(h + records.LOCAL.size + nlen + elen)
    cd_end = z64 if z64 is not None else eocd
    return Layout(
        size=len(data), eocd=eocd, zip64_eocd=z64, zip64_locator=z64loc, cd_offset=cd_offset,
        cd_size=cd_end - cd_offset, local_headers=local, data_offsets=offs,
        names=[i.filename for i in infos],
    )


def hierarchy_bytes(src: Path) -> dict[str, bytes]:
    """{relative name: bytes} of every file under ``src``."""
    src = Path(src)
    return {n: (src / n).read_bytes() for n in tree_files(src)}


def environment_has_zip() -> bool:
    return shutil.which("zip") is not None




# --------------------------------------------------------------------------------------------
# A byte source that counts what the reader touches
# --------------------------------------------------------------------------------------------


class CountingSource(ByteSource):
    """Forwards to a LocalFile and counts the bytes asked for (reads and scans)."""

    def __init__(self, path, *, cheap_scan: bool):
        self.inner = LocalFile(path)
        self.name = self.inner.name
        self.size = self.inner.size
        self.cheap_scan = cheap_scan
        self.reads: list[tuple[int, int]] = []
        self.scanned = 0

    def read(self, offset, length):
        self.reads.append((offset, length))
        return self.inner.read(offset, length)

    def read_into(self, offset, view):
        self.reads.append((offset, len(view)))
        view[:] = self.inner.read(offset, len(view))

    def find(self, pattern, start, end):
        self.scanned += end - start
        data = self.inner.read(start, end - start)
        i = data.find(pattern)
        return -1 if i < 0 else start + i

    @property
    def touched(self) -> int:
        return sum(n for _, n in self.reads) + self.scanned
