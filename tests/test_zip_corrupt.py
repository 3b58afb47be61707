"""Corrupt and truncated archives: every region (EOCD, ZIP64 end record and locator, central
directory, local headers, data), bad signatures, offsets and sizes outside the file, lying comment
length, central-directory size/offset and entry count.  Each gives an OzxError subclass naming the
archive, promptly (pytest-timeout), or - where the damage is harmless - the right bytes."""

from __future__ import annotations

import struct
import warnings
import zipfile
from pathlib import Path

import pytest

import archives
from archives import CountingSource
from napari_ozx import CorruptArchiveError, NotAZipError, OzxError, OzxWarning
from napari_ozx.zip import ZipArchive, records

pytestmark = pytest.mark.timeout(10)

N = 12


def _base(tmp_path: Path, kind: str) -> tuple[Path, dict[str, bytes]]:
    entries = list(archives.many_entries(N))
    if kind == "zip64":
        path = archives.write_raw_zip(tmp_path / "base.ozx", entries, zip64=True,
                                      comment=archives.COMMENT_PLAIN)
    elif kind == "jsonfirst":
        path = archives.write_raw_zip(tmp_path / "base.ozx", entries, zip64=True)
    else:  # the stdlib, no ZIP64 records
        path = tmp_path / "base.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for n, d in entries:
                zf.writestr(zipfile.ZipInfo(n, (2024, 1, 1, 0, 0, 0)), d)
            zf.comment = archives.COMMENT_PLAIN
    return path, dict(entries)


def _check(path: Path, original: dict[str, bytes], *, must_fail: bool | str):
    """Open and read everything: an OzxError naming the archive, or the original bytes.

    ``must_fail``: True (some OzxError is required), a class name (that exact type at open),
    or False (the damage is harmless: everything must read back)."""
    failures = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OzxWarning)
            arch = ZipArchive(path)
            for name, data in original.items():
                try:
                    got = arch.read(name)
                except OzxError as e:
                    assert str(path) in str(e), str(e)
                    failures.append(e)
                    continue
                assert got is None or got == data, name
                if got is None:
                    failures.append(name)
    except OzxError as e:
        assert str(path) in str(e), str(e)
        if isinstance(must_fail, str):
            assert type(e).__name__ == must_fail, repr(e)
        return e
    if must_fail:
        assert failures, "corruption went unnoticed"
        assert not isinstance(must_fail, str), f"expected {must_fail} at open, got {failures}"
    else:
        assert not failures, failures
    return None


def _mutate(path: Path, fn):
    raw = bytearray(path.read_bytes())
    raw = fn(raw)
    path.write_bytes(bytes(raw))


KINDS = ["zip64", "stdlib", "jsonfirst"]


# ---------------------------------------------------------------------------------- truncation


def _regions(lay: archives.Layout):
    out = {
        "eocd": lay.eocd + 10,
        "central-directory": lay.cd_offset + lay.cd_size // 2,
        "first-central-header": lay.cd_offset + 20,
        "local-header": lay.local_headers[3] + 12,
        "data": lay.data_offsets[3] + 5,
        "first-byte": 1,
        "empty": 0,
    }
    if lay.zip64_eocd is not None:
        out["zip64-end-record"] = lay.zip64_eocd + 30
        out["zip64-locator"] = lay.zip64_locator + 10
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("region", ["eocd", "central-directory", "first-central-header",
                                    "local-header", "data", "first-byte", "empty",
                                    "zip64-end-record", "zip64-locator"])
def test_truncated_inside_each_region(tmp_path, kind, region):
    path, original = _base(tmp_path, kind)
    cuts = _regions(archives.layout(path))
    if region not in cuts:
        pytest.skip("no such region in this archive")
    _mutate(path, lambda raw: raw[: cuts[region]])
    e = _check(path, original, must_fail=True)
    assert isinstance(e, (NotAZipError, CorruptArchiveError)), repr(e)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("region", ["central-directory", "local-header", "data",
                                    "zip64-end-record"])
def test_bytes_cut_out_of_each_region(tmp_path, kind, region):
    """The tail is intact but 7 bytes inside a region are gone: offsets no longer agree."""
    path, original = _base(tmp_path, kind)
    cuts = _regions(archives.layout(path))
    if region not in cuts:
        pytest.skip("no such region in this archive")
    at = cuts[region]
    _mutate(path, lambda raw: raw[:at] + raw[at + 7 :])
    _check(path, original, must_fail=True)


# ------------------------------------------------------------------------------ bad signatures


def _sig_positions(lay: archives.Layout):
    out = {"eocd": lay.eocd, "central-header-0": lay.cd_offset,
           "local-header-4": lay.local_headers[4]}
    raw_first = lay.cd_offset
    out["central-header-last"] = None  # found below
    if lay.zip64_eocd is not None:
        out["zip64-end-record"] = lay.zip64_eocd
        out["zip64-locator"] = lay.zip64_locator
    return out, raw_first


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("record", ["eocd", "central-header-0", "central-header-last",
                                    "local-header-4", "zip64-end-record", "zip64-locator"])
def test_bad_signatures(tmp_path, kind, record):
    path, original = _base(tmp_path, kind)
    lay = archives.layout(path)
    pos, _ = _sig_positions(lay)
    if record not in pos:
        pytest.skip("no such record in this archive")
    if record == "central-header-last":
        raw = path.read_bytes()
        p = lay.cd_offset
        last = p
        while raw[p : p + 4] == records.SIG_CENTRAL:
            last = p
            n, e, c = struct.unpack_from("<HHH", raw, p + 28)
            p += 46 + n + e + c
        pos[record] = last
    at = pos[record]
    _mutate(path, lambda raw: raw[:at] + b"PK\x09\x09" + raw[at + 4 :])
    expect = {"eocd": "NotAZipError"}.get(record, True)
    if record == "zip64-locator":
        # Without its locator the ZIP64 end record is invisible; the classic record says
        # 0xFFFFFFFF for the directory: corrupt.
        expect = "CorruptArchiveError"
    _check(path, original, must_fail=expect)


# ------------------------------------------------------------------ offsets and sizes that lie


def _eocd_fields(path: Path, lay: archives.Layout):
    raw = path.read_bytes()
    return list(records.EOCD.unpack_from(raw, lay.eocd))


EOCD_FIELDS = ["sig", "disk", "cd_disk", "n_disk", "n_total", "cd_size", "cd_offset", "clen"]
ZIP64_EOCD_FIELDS = ["sig", "rec_size", "made_by", "needed", "disk", "cd_disk", "n_disk",
                     "n_total", "cd_size", "cd_offset"]


def _set_fields(path, record, offset: int, names: list[str], **kw):
    """Rewrite the named fields of the ``record`` (a struct) at ``offset`` in the file."""
    raw = bytearray(path.read_bytes())
    vals = list(record.unpack_from(raw, offset))
    for k, v in kw.items():
        vals[names.index(k)] = v
    record.pack_into(raw, offset, *vals)
    path.write_bytes(bytes(raw))


def _set_eocd(path, lay, **kw):
    _set_fields(path, records.EOCD, lay.eocd, EOCD_FIELDS, **kw)


def _set_zip64(path, lay, **kw):
    _set_fields(path, records.ZIP64_EOCD, lay.zip64_eocd, ZIP64_EOCD_FIELDS, **kw)


def _set_end(path, lay, **kw):
    if lay.zip64_eocd is not None:
        _set_zip64(path, lay, **kw)
    else:
        _set_eocd(path, lay, **kw)


LIES = {
    # name: (fields as a function of the layout, must_fail)
    "cd-offset-beyond-file": (lambda lay: {"cd_offset": lay.size + 100}, True),
    "cd-offset-max": (lambda lay: {"cd_offset": 0xFFFFFFFE}, True),
    "cd-offset-too-small": (lambda lay: {"cd_offset": lay.cd_offset - 5}, True),
    "cd-offset-too-big": (lambda lay: {"cd_offset": lay.cd_offset + 5}, True),
    "cd-size-too-big": (lambda lay: {"cd_size": lay.cd_size + 46}, True),
    "cd-size-huge": (lambda lay: {"cd_size": 0xFFFFFFF0}, True),
    "cd-size-too-small": (lambda lay: {"cd_size": lay.cd_size - 10}, True),
    "cd-size-zero": (lambda lay: {"cd_size": 0}, True),
    "count-too-big": (lambda lay: {"n_disk": N + 1, "n_total": N + 1}, True),
    "count-too-small": (lambda lay: {"n_disk": N - 1, "n_total": N - 1}, True),
    "count-huge": (lambda lay: {"n_disk": 0xFFFE, "n_total": 0xFFFE}, True),
    "count-zero": (lambda lay: {"n_disk": 0, "n_total": 0}, True),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_end_record(tmp_path, kind, lie):
    path, original = _base(tmp_path, kind)
    lay = archives.layout(path)
    fields, must_fail = LIES[lie]
    _set_end(path, lay, **fields(lay))
    if kind == "jsonfirst" and lie in ("count-too-big", "count-too-small"):
        # the count is checked against the full directory, decoded on the first chunk read
        must_fail = True
    _check(path, original, must_fail=must_fail)


@pytest.mark.parametrize("kind", ["zip64", "jsonfirst"])
@pytest.mark.parametrize("value", [2**63 - 1, 2**64 - 1, 2**40])
@pytest.mark.parametrize("field", ["n_total", "cd_size", "cd_offset"])
def test_lying_zip64_end_record_huge_values(tmp_path, kind, field, value):
    path, original = _base(tmp_path, kind)
    lay = archives.layout(path)
    kw = {field: value}
    if field == "n_total":
        kw["n_disk"] = value
    _set_zip64(path, lay, **kw)
    e = _check(path, original, must_fail=True)
    assert e is not None


@pytest.mark.parametrize("kind", ["zip64", "jsonfirst"])
def test_zip64_locator_pointing_outside(tmp_path, kind):
    path, original = _base(tmp_path, kind)
    lay = archives.layout(path)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<Q", raw, lay.zip64_locator + 8, 2**62)
    # and move the record so the "expected" position does not find it either
    raw[lay.zip64_eocd : lay.zip64_eocd + 4] = b"XXXX"
    path.write_bytes(bytes(raw))
    _check(path, original, must_fail="CorruptArchiveError")


@pytest.mark.parametrize("delta", [1, 100, 60_000])
def test_comment_length_runs_past_the_end(tmp_path, delta):
    path, original = _base(tmp_path, "zip64")
    lay = archives.layout(path)
    clen = len(archives.COMMENT_PLAIN)
    _set_eocd(path, lay, clen=clen + delta)
    _check(path, original, must_fail="CorruptArchiveError")


def test_comment_length_too_short_is_tolerated(tmp_path):
    """Bytes after the comment (some tools append them): the end record is still found."""
    path, original = _base(tmp_path, "zip64")
    lay = archives.layout(path)
    _set_eocd(path, lay, clen=3)
    _check(path, original, must_fail=False)


def test_prepended_bytes_are_tolerated(tmp_path):
    path, original = _base(tmp_path, "stdlib")
    _mutate(path, lambda raw: b"\x7fELF stub " * 50 + raw)
    _check(path, original, must_fail=False)


# --------------------------------------------------------------------- central-directory fields


def _central_headers(raw: bytes, lay: archives.Layout) -> list[int]:
    out, p = [], lay.cd_offset
    while raw[p : p + 4] == records.SIG_CENTRAL:
        out.append(p)
        n, e, c = struct.unpack_from("<HHH", raw, p + 28)
        p += 46 + n + e + c
    return out


CENTRAL_LIES = {
    "local-offset-beyond-file": (42, "<I", lambda lay: 0xFFFFFF00),
    "local-offset-into-cd": (42, "<I", lambda lay: lay.cd_offset - 10),
    "local-offset-mid-data": (42, "<I", lambda lay: lay.data_offsets[5] + 3),
    "compressed-size-huge": (20, "<I", lambda lay: 0xFFFFFF00),
    "sizes-huge": (20, "<II", lambda lay: (0x7FFFFFFF, 0x7FFFFFFF)),
    "name-length-huge": (28, "<H", lambda lay: 0xFFFF),
    "extra-length-huge": (30, "<H", lambda lay: 0xFFF0),
    "comment-length-huge": (32, "<H", lambda lay: 0xFFFF),
    "zip64-marker-without-extra": (42, "<I", lambda lay: 0xFFFFFFFF),
    "method-unknown": (10, "<H", lambda lay: 77),
}


@pytest.mark.parametrize("kind", ["stdlib", "jsonfirst"])
@pytest.mark.parametrize("lie", sorted(CENTRAL_LIES))
@pytest.mark.parametrize("which", [0, 5, N - 1])
def test_lying_central_directory_header(tmp_path, kind, lie, which):
    path, original = _base(tmp_path, kind)
    lay = archives.layout(path)
    raw = bytearray(path.read_bytes())
    hdr = _central_headers(bytes(raw), lay)[which]
    off, fmt, val = CENTRAL_LIES[lie]
    v = val(lay)
    if kind == "jsonfirst" and lie.startswith(("local-offset", "zip64-marker")):
        # ZIP64-always headers keep the offset in the extra field: lie there instead.
        n = struct.unpack_from("<H", raw, hdr + 28)[0]
        extra = hdr + 46 + n
        struct.pack_into("<Q", raw, extra + 4 + 16, v if lie != "zip64-marker-without-extra"
                         else 2**63 + 5)
    else:
        struct.pack_into(fmt, raw, hdr + off, *(v if isinstance(v, tuple) else (v,)))
    path.write_bytes(bytes(raw))
    _check(path, original, must_fail=True)


@pytest.mark.parametrize("which", [0, 4])
@pytest.mark.parametrize(
    "field, fmt, value",
    [("name-length", "<H", 0xFFFF), ("extra-length", "<H", 0xFFFF), ("signature", "<I", 0)],
)
def test_lying_local_header(tmp_path, which, field, fmt, value):
    path, original = _base(tmp_path, "zip64")
    lay = archives.layout(path)
    at = lay.local_headers[which] + {"name-length": 26, "extra-length": 28, "signature": 0}[field]
    _mutate(path, lambda raw: (struct.pack_into(fmt, raw, at, value), raw)[1])
    e = _check(path, original, must_fail=True)
    assert e is None  # the archive opens; only that entry fails
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OzxWarning)
        arch = ZipArchive(path)
    name = lay.names[which]
    with pytest.raises(CorruptArchiveError) as ei:
        arch.read(name)
    assert repr(name) in str(ei.value)
    other = lay.names[which + 1]
    assert arch.read(other) == original[other]


def test_local_header_lengths_differ_from_central(tmp_path):
    """The data offset comes from the LOCAL header (its extra field may be longer)."""
    entries = [archives.RawEntry("zarr.json", archives.many_root_meta()),
               archives.RawEntry("x", b"payload-x", local_extra=b"\x99\x99\x05\x00hello"),
               archives.RawEntry("y", b"payload-y", local_name=b"y-longer-local-name")]
    path = archives.write_raw_zip(tmp_path / "l.zip", entries)
    arch = ZipArchive(path)
    assert arch.read("x") == b"payload-x"
    assert arch.read("y") == b"payload-y"
    with zipfile.ZipFile(path) as zf:
        assert zf.read("x") == b"payload-x"


@pytest.mark.parametrize("content", [b"", b"PK", b"PK\x05\x06", b"hello world" * 3,
                                     b"\0" * 22, b"PK\x05\x06" + b"\0" * 14 + b"\x05\x00"])
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "x.ozx"
    path.write_bytes(content)
    with pytest.raises(OzxError) as ei:
        ZipArchive(path)
    assert str(path) in str(ei.value)


def test_empty_archive(tmp_path):
    """A valid ZIP with no entries opens and is empty."""
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    with pytest.warns(OzxWarning):
        arch = ZipArchive(path)
    assert list(arch.names()) == []
    assert arch.read("zarr.json") is None


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(OzxError) as ei:
        ZipArchive(tmp_path / "nope.ozx")
    assert "nope.ozx" in str(ei.value)
    with pytest.raises(OzxError):
        ZipArchive(tmp_path)


def _gap_archive(path: Path, a_extra: int = 20, n_more: int = 0):
    """Entry A has an ``a_extra``-byte local extra field; entry B's data is followed by 20
    bytes that belong to no entry; then C (and ``n_more`` plain entries).  Valid: every reader
    that follows local headers reads it."""
    import zlib

    a, b, c = b"A" * 100, bytes(range(100)), b"C" * 100
    central = []
    with open(path, "wb") as f:
        def put(name, data, local_extra=b"", gap=b""):
            off = f.tell()
            crc = zlib.crc32(data)
            f.write(records.pack_local_header(name, method=0, crc32=crc, compressed_size=len(data),
                                              uncompressed_size=len(data), extra=local_extra))
            f.write(data + gap)
            central.append(records.pack_central_header(
                name, method=0, crc32=crc, compressed_size=len(data),
                uncompressed_size=len(data), local_header_offset=off))

        put(b"zarr.json", b"{}")
        put(b"A", a, local_extra=(b"\x99\x99" + struct.pack("<H", a_extra - 4)
                                  + bytes(a_extra - 4)) if a_extra else b"")
        put(b"B", b, gap=b"J" * 20)
        put(b"C", c)
        for i in range(n_more):
            put(b"D%d" % i, b"d" * i)
        cd = f.tell()
        blob = b"".join(central)
        f.write(blob + records.pack_end_records(entries=4 + n_more, cd_offset=cd, cd_size=len(blob),
                                                comment=archives.COMMENT_PLAIN, zip64=False))
    return {"A": a, "B": b, "C": c}


@pytest.mark.parametrize("a_extra, n_more", [(20, 0), (0, 0), (0, 30), (20, 30)],
                         ids=["extra-20", "uniform", "uniform-many", "extra-20-many"])
@pytest.mark.parametrize("cheap_scan", [True, False], ids=["local", "remote-like"])
def test_bytes_between_entries_never_shift_a_range(tmp_path, cheap_scan, a_extra, n_more):
    path = tmp_path / "gap.zip"
    content = _gap_archive(path, a_extra, n_more)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("B") == content["B"]
    arch = ZipArchive(CountingSource(path, cheap_scan=cheap_scan), warn=False)
    for i in range(n_more):  # headers read first: the layout looks uniform
        assert arch.read(f"D{i}") == b"d" * i
    assert arch.read("A") == content["A"]
    assert arch.read("B", 10, 20) == content["B"][10:20]
    assert arch.read("B") == content["B"]
    assert arch.read("C", 0, 5) == content["C"][:5]
