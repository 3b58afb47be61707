"""Entry names (duplicates, directories, unsafe names, cp437 / UTF-8) and entry methods (DEFLATE
bounds, CRC-32, unsupported methods, encryption, multi-disk archives)."""

from __future__ import annotations

import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import archives
from napari_ozx import (
    CorruptArchiveError,
    OzxError,
    OzxStore,
    OzxWarning,
    UnsupportedFeatureError,
    open_ozx,
)
from napari_ozx.zip import ZipArchive, records


def _names(arch):
    return sorted(arch.names())


# --------------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------------


def test_duplicates_last_wins_one_warning(tmp_path):
    entries = list(archives.many_entries(12))
    entries.insert(5, ("a/c/7/0", b"\x00" * 32))  # stale copy first ...
    entries.insert(6, ("a/c/8/0", b"\x01" * 32))
    entries.append(("a/c/7/0", archives.many_row(1000).tobytes()))  # ... then the winner
    entries.append(("a/c/8/0", archives.many_row(2000).tobytes()))
    entries.append(("a/c/8/0", archives.many_row(3000).tobytes()))  # three copies
    path = archives.write_raw_zip(tmp_path / "dup.ozx", entries)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = open_ozx(path)
        np.testing.assert_array_equal(g["a"][7], archives.many_row(1000))
        np.testing.assert_array_equal(g["a"][8], archives.many_row(3000))
        np.testing.assert_array_equal(g["a"][9], archives.many_row(9))
        listed = list(g.store.archive.names())
        g["a"][:]  # more reads: no more warnings
    ours = [w for w in rec if issubclass(w.category, OzxWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    msg = str(ours[0].message)
    assert str(path) in msg and "a/c/7/0" in msg and "a/c/8/0" in msg
    assert listed.count("a/c/7/0") == 1 and listed.count("a/c/8/0") == 1
    assert len(listed) == 12
    assert sorted(g.store.archive.duplicates) == ["a/c/7/0", "a/c/8/0"]


def test_duplicates_written_by_the_stdlib(tmp_path):
    """zipfile appends a second entry of the same name (as zarr's ZipStore does on rewrite)."""
    path = tmp_path / "dup.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's own "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x", b"old")
            zf.writestr("y", b"why")
            zf.writestr("x", b"new")
    with pytest.warns(OzxWarning, match="more than once"):
        arch = ZipArchive(path)
    assert arch.read("x") == b"new"
    assert arch.size("x") == 3
    assert _names(arch) == ["x", "y"]
    with zipfile.ZipFile(path) as zf:  # the stdlib agrees: last one wins
        assert zf.read("x") == b"new"


def test_duplicate_metadata_in_json_first_prefix(tmp_path):
    entries = [("zarr.json", b'{"broken": true}'), ("zarr.json", archives.many_root_meta())]
    entries += list(archives.many_entries(6))[1:]
    path = archives.write_raw_zip(tmp_path / "dupmeta.ozx", entries)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = open_ozx(path)
        assert g.attrs["ome"]["version"] == "0.5"  # the last zarr.json, from the prefix
        assert not g.store.archive.is_fully_indexed
        np.testing.assert_array_equal(g["a"][2], archives.many_row(2))  # now the whole directory
        assert g.store.archive.is_fully_indexed
        assert g.attrs["ome"]["version"] == "0.5"
    dup = [w for w in rec if issubclass(w.category, OzxWarning) and "more than once" in
           str(w.message)]
    assert len(dup) == 1, [str(w.message) for w in rec]
    assert "zarr.json" in str(dup[0].message)


# --------------------------------------------------------------------------------------------
# Directories and unsafe names
# --------------------------------------------------------------------------------------------

UNSAFE = [b"/etc/passwd", b"../escape", b"a/../../b", b"a/..", b"..", b"a\\b", b"C:evil",
          b"nul\x00byte", b"/"]


def test_directories_ignored_and_unsafe_names_never_served(tmp_path):
    entries = [archives.RawEntry("zarr.json", archives.many_root_meta()), archives.RawEntry("dir/"),
               archives.RawEntry("dir/sub/")]
    entries += [archives.RawEntry(n, b"secret") for n in UNSAFE]
    entries += [archives.RawEntry("dir/ok", b"fine"),
                archives.RawEntry("a..b/..c/d..", b"dots are fine")]
    path = archives.write_raw_zip(tmp_path / "unsafe.zip", entries, comment=archives.COMMENT_PLAIN)
    with pytest.warns(OzxWarning, match="unsafe") as rec:
        store = OzxStore(path)
    assert len([w for w in rec if "unsafe" in str(w.message)]) == 1
    arch = store.archive
    assert _names(arch) == ["a..b/..c/d..", "dir/ok", "zarr.json"]
    assert arch.n_unsafe == len(UNSAFE)
    assert arch.n_directories == 2
    for n in UNSAFE:
        s = n.decode("utf-8", "surrogateescape")
        assert arch.read(s) is None
        assert store.get_sync(s) is None
    for d in ["dir/", "dir/sub/", "dir", "dir/sub"]:
        assert arch.read(d) is None
    assert arch.read("dir/ok") == b"fine"
    assert arch.read("a..b/..c/d..") == b"dots are fine"


def test_unsafe_names_in_a_stdlib_archive(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", archives.many_root_meta())
        zf.writestr(zipfile.ZipInfo("../../outside"), b"x")
        zf.writestr(zipfile.ZipInfo("/abs/path"), b"y")
    with pytest.warns(OzxWarning):
        arch = ZipArchive(path)
    assert _names(arch) == ["zarr.json"]
    assert sorted(arch.unsafe_names) == ["../../outside", "/abs/path"]


# --------------------------------------------------------------------------------------------
# Name encodings
# --------------------------------------------------------------------------------------------


def test_cp437_names_without_utf8_flag(tmp_path):
    cp437 = "café/ñandú/Ω".encode("cp437")  # 0x82, 0xA4, 0xA3, 0xEA
    entries = [archives.RawEntry("zarr.json", archives.many_root_meta()),
               archives.RawEntry(cp437, b"old dos name", flags=0),
               archives.RawEntry("plain", b"ascii", flags=0)]
    path = archives.write_raw_zip(tmp_path / "dos.zip", entries, comment=archives.COMMENT_PLAIN)
    arch = ZipArchive(path)
    assert "café/ñandú/Ω" in _names(arch)
    assert arch.read("café/ñandú/Ω") == b"old dos name"
    assert arch.read("plain") == b"ascii"
    with zipfile.ZipFile(path) as zf:  # the stdlib decodes it the same way
        assert zf.read("café/ñandú/Ω") == b"old dos name"


def test_utf8_names_with_flag(tmp_path):
    path = tmp_path / "utf8.zip"
    names = ["zarr.json", "données/é.bin", "日本/チャンク", "emoji/🔬"]
    with zipfile.ZipFile(path, "w") as zf:  # the stdlib sets the UTF-8 flag for these
        for n in names:
            zf.writestr(n, n.encode() * 2)
    with pytest.warns(OzxWarning, match="comment"):
        arch = ZipArchive(path)
    assert _names(arch) == sorted(names)
    for n in names:
        assert arch.read(n) == n.encode() * 2
    assert list(arch.names("日本/")) == ["日本/チャンク"]


def test_infozip_names_agree_with_stdlib(tmp_path):
    """Info-ZIP on Linux stores UTF-8 bytes without the UTF-8 flag: by the APPNOTE (and the
    stdlib) they are cp437.  We read them as the stdlib does, and ASCII names are unaffected."""
    src = tmp_path / "t"
    (src / "sub").mkdir(parents=True)
    (src / "zarr.json").write_bytes(archives.many_root_meta())
    (src / "sub" / "é.txt").write_bytes(b"accent")
    path = archives.zip_infozip(src, tmp_path / "iz.zip")
    with pytest.warns(OzxWarning):
        arch = ZipArchive(path)
    with zipfile.ZipFile(path) as zf:
        stdlib = sorted(i.filename for i in zf.infolist() if not i.is_dir())
        for n in stdlib:
            assert arch.read(n) == zf.read(n)
    assert _names(arch) == stdlib
    assert arch.read("zarr.json") == archives.many_root_meta()


# --------------------------------------------------------------------------------------------
# DEFLATE: bounded, CRC-checked
# --------------------------------------------------------------------------------------------


def _zarr_prefix():
    return [archives.RawEntry("zarr.json", archives.many_root_meta())]


def test_deflate_bomb_is_an_error_not_an_allocation(tmp_path):
    bomb = b"\0" * (64 << 20)
    entries = _zarr_prefix() + [
        archives.RawEntry("bomb", bomb[:1000], method=records.METHOD_DEFLATED,
                          payload=archives.deflate_raw(bomb), uncompressed_size=1000),
    ]
    path = archives.write_raw_zip(tmp_path / "bomb.zip", entries)
    arch = ZipArchive(path)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptArchiveError, match="beyond its declared size") as ei:
            arch.read("bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    assert "bomb" in str(ei.value) and str(path) in str(ei.value)


@pytest.mark.parametrize("declared", [2**40, 2**62, 2**63 - 1])
def test_absurd_declared_size_is_an_error(tmp_path, declared):
    payload = archives.deflate_raw(b"hello" * 100)
    entries = _zarr_prefix() + [
        archives.RawEntry("huge", b"hello" * 100, method=records.METHOD_DEFLATED, payload=payload,
                          uncompressed_size=declared),
    ]
    path = archives.write_raw_zip(tmp_path / "huge.zip", entries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OzxWarning)
        arch = ZipArchive(path)
    tracemalloc.start()
    try:
        with pytest.raises(OzxError) as ei:
            arch.read("huge")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert "huge" in str(ei.value)


def test_deflate_shorter_than_declared(tmp_path):
    entries = _zarr_prefix() + [
        archives.RawEntry("short", b"abc" * 10, method=records.METHOD_DEFLATED,
                          uncompressed_size=31),
    ]
    path = archives.write_raw_zip(tmp_path / "short.zip", entries)
    with pytest.raises(CorruptArchiveError, match="declared"):
        ZipArchive(path).read("short")


def test_corrupt_deflate_stream(tmp_path):
    payload = bytearray(archives.deflate_raw(bytes(range(256)) * 50))
    payload[0] ^= 0xFF
    payload[5:9] = b"\xff\xff\xff\xff"
    entries = _zarr_prefix() + [
        archives.RawEntry("bad", bytes(range(256)) * 50, method=records.METHOD_DEFLATED,
                          payload=bytes(payload)),
    ]
    path = archives.write_raw_zip(tmp_path / "bad.zip", entries)
    with pytest.raises(CorruptArchiveError) as ei:
        ZipArchive(path).read("bad")
    assert "'bad'" in str(ei.value)


@pytest.mark.parametrize("method", [records.METHOD_STORED, records.METHOD_DEFLATED])
def test_crc_checked(tmp_path, method):
    data = bytes(range(200))
    entries = _zarr_prefix() + [
        archives.RawEntry("good", data, method=method),
        archives.RawEntry("bad", data, method=method, crc32=zlib.crc32(data) ^ 1),
    ]
    path = archives.write_raw_zip(tmp_path / "crc.zip", entries)
    arch = ZipArchive(path)
    assert arch.read("good") == data
    with pytest.raises(CorruptArchiveError, match="CRC") as ei:
        arch.read("bad")
    assert "bad" in str(ei.value) and str(path) in str(ei.value)
    # Without verification the bytes come back.
    assert ZipArchive(path, verify_crc=False).read("bad") == data
    # Ranges of a DEFLATE entry come from a whole (checked) inflation.
    if method == records.METHOD_DEFLATED:
        with pytest.raises(CorruptArchiveError, match="CRC"):
            arch.read("bad", 3, 9)
        assert arch.read("good", 3, 9) == data[3:9]


def test_crc_mismatch_surfaces_through_zarr(tmp_path):
    src = tmp_path / "t"
    archives.make_v3_hierarchy(src)
    path = archives.zip_stdlib(src, tmp_path / "a.ozx")
    lay = archives.layout(path)
    i = lay.names.index("0/c/1/1")
    raw = bytearray(path.read_bytes())
    raw[lay.data_offsets[i] + 3] ^= 0x40
    path.write_bytes(raw)
    g = open_ozx(path)
    np.testing.assert_array_equal(g["0"][:16, :16].shape, (16, 16))  # other chunks fine
    with pytest.raises(CorruptArchiveError, match="CRC") as ei:
        g["0"][16:32, 16:32]
    assert "0/c/1/1" in str(ei.value)


# --------------------------------------------------------------------------------------------
# Unsupported: other methods, encryption, multi-disk
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "compression, word", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "lzma")]
)
def test_other_methods_are_unsupported(tmp_path, compression, word):
    path = tmp_path / f"{word}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("zarr.json", archives.many_root_meta())
        zf.writestr("packed", b"payload" * 100, compress_type=compression)
    with pytest.warns(OzxWarning):
        arch = ZipArchive(path)
    assert arch.read("zarr.json") == archives.many_root_meta()
    with pytest.raises(UnsupportedFeatureError, match=word) as ei:
        arch.read("packed")
    assert "'packed'" in str(ei.value) and str(path) in str(ei.value)
    assert arch.size("packed") == 700  # still listed and sized
    assert "packed" in _names(arch)


@pytest.mark.parametrize("flags, method", [(records.FLAG_UTF8 | records.FLAG_ENCRYPTED, 0),
                                           (records.FLAG_UTF8 | records.FLAG_STRONG_ENCRYPTION, 0),
                                           (records.FLAG_UTF8, 99)])
def test_encrypted_entries_are_unsupported(tmp_path, flags, method):
    entries = _zarr_prefix() + [archives.RawEntry("secret", b"\x12" * 64, flags=flags,
                                                  method=method)]
    path = archives.write_raw_zip(tmp_path / "enc.zip", entries)
    arch = ZipArchive(path)
    with pytest.raises(UnsupportedFeatureError, match="encrypt") as ei:
        arch.read("secret")
    assert "'secret'" in str(ei.value)


def _patch(path, offset, fmt, *values):
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(raw)


@pytest.mark.parametrize("zip64", [False, True])
def test_multi_disk_archives_are_unsupported(tmp_path, zip64):
    path = archives.write_raw_zip(tmp_path / "split.zip", archives.many_entries(5), zip64=zip64)
    lay = archives.layout(path)
    _patch(path, lay.eocd + 4, "<HH", 1, 1)  # this disk / central-directory disk
    if zip64:
        _patch(path, lay.zip64_locator + 16, "<I", 3)  # total disks
    with pytest.raises(UnsupportedFeatureError, match="multi-part") as ei:
        ZipArchive(path)
    assert str(path) in str(ei.value)


def test_entry_on_another_disk_is_unsupported(tmp_path):
    path = archives.write_raw_zip(tmp_path / "disk.zip", archives.many_entries(5), zip64=False)
    lay = archives.layout(path)
    # disk number start of the third central-directory header
    with zipfile.ZipFile(path) as zf:
        order = [i.filename for i in zf.infolist()]
    raw = path.read_bytes()
    pos = lay.cd_offset
    for _ in range(2):
        n, e, c = struct.unpack_from("<HHH", raw, pos + 28)
        pos += 46 + n + e + c
    _patch(path, pos + 34, "<H", 2)
    with pytest.raises(UnsupportedFeatureError) as ei:
        ZipArchive(path).read(order[2])
    assert str(path) in str(ei.value)


def test_longest_names(tmp_path):
    """A 65,535-byte name (the most a ZIP name field holds) is served; a cp437 name that would
    grow past that in UTF-8 is refused, never listed under a cut-off name."""
    longest = ("d/" * 20000 + "x" * 25535).encode()
    assert len(longest) == 65535
    grows = b"\xb0" * 30000 + b"/x"  # cp437 '░' is 3 bytes in UTF-8: 90,002 bytes
    entries = [archives.RawEntry("zarr.json", archives.many_root_meta()),
               archives.RawEntry(longest, b"longest"),
               archives.RawEntry(grows, b"grows", flags=0),
               archives.RawEntry("after", b"after")]
    path = archives.write_raw_zip(tmp_path / "long.zip", entries, comment=archives.COMMENT_PLAIN)
    with pytest.warns(OzxWarning, match="unsafe") as rec:
        arch = ZipArchive(path)
    assert rec and all(len(str(w.message)) < 2000 for w in rec)
    assert _names(arch) == sorted(["zarr.json", longest.decode(), "after"])
    assert arch.read(longest.decode()) == b"longest"
    assert arch.read(grows.decode("cp437")) is None
    assert arch.read("after") == b"after"
    assert arch.n_unsafe == 1


# --------------------------------------------------------------------------------------------
# ZIP64 extra fields as other writers lay them out
# --------------------------------------------------------------------------------------------

UT = b"UT\x05\x00\x03\x00\x00\x00\x00"  # Info-ZIP's extended timestamp, often first
UX = b"ux\x0b\x00\x01\x04\xe8\x03\x00\x00\x04\xe8\x03\x00\x00"


@pytest.mark.parametrize("before", [UT, UT + UX, b"\x99\x99\x00\x00"])
def test_zip64_extra_field_after_other_extra_fields(tmp_path, before):
    entries = [archives.RawEntry("zarr.json", archives.many_root_meta(), central_extra=before,
                                 force_zip64=True)]
    entries += [archives.RawEntry(f"a/{i}", bytes([i]) * (i + 1), central_extra=before,
                                  force_zip64=True) for i in range(20)]
    path = archives.write_raw_zip(tmp_path / "x.zip", entries, comment=archives.COMMENT_PLAIN)
    arch = ZipArchive(path)
    with zipfile.ZipFile(path) as zf:
        for i in range(20):
            assert arch.read(f"a/{i}") == zf.read(f"a/{i}") == bytes([i]) * (i + 1)
            assert arch.info(f"a/{i}").header_offset == zf.getinfo(f"a/{i}").header_offset


@pytest.mark.timeout(60)
def test_zip64_extra_with_only_the_offset(tmp_path):
    """Entries past 4 GiB whose sizes fit 32 bits: the ZIP64 extra holds only the offset."""
    entries = [("zarr.json", archives.many_root_meta())]
    entries += [(f"c/{i}", b"%d" % i * 7) for i in range(5)]
    path = archives.write_raw_zip(tmp_path / "off.zip", entries, start_offset=(4 << 30) + 3,
                                  zip64="auto")
    with open(path, "rb") as f:  # (the tail only: the file is a 4 GiB hole)
        f.seek(-4096, 2)
        raw = f.read()
    assert raw.count(b"\x01\x00\x08\x00") >= 6  # ZIP64 extra of one 8-byte value, each entry
    arch = ZipArchive(path)
    for n, d in entries:
        assert arch.read(n) == d
        assert arch.info(n).header_offset > 4 << 30


# Names whose 64-bit index hashes are equal (found by search for the current name_hash).
COLLIDING = [b"collide-abcdefgh", b"kSNARCgyythkpphp", b"NzQULa6gb7k6noa5", b"cZbXCFcOac950z7z"]


def test_hash_collisions_are_told_apart(tmp_path):
    from napari_ozx.zip.namehash import name_hash

    if len({name_hash(n) for n in COLLIDING}) != 1:
        pytest.skip("name_hash changed: search new colliding names for this test")
    entries = [("zarr.json", archives.many_root_meta())]
    entries += [(n, b"data of " + n) for n in COLLIDING]
    entries += [(COLLIDING[1], b"second copy of " + COLLIDING[1])]  # a real duplicate too
    path = archives.write_raw_zip(tmp_path / "h.zip", entries, comment=archives.COMMENT_PLAIN)
    with pytest.warns(OzxWarning, match="more than once") as rec:
        arch = ZipArchive(path)
    msgs = [str(w.message) for w in rec if "more than once" in str(w.message)]
    assert len(msgs) == 1 and msgs[0].count("kSNARC") == 1
    assert "collide" not in msgs[0] and "NzQU" not in msgs[0]
    assert arch.duplicates == [COLLIDING[1].decode()]
    for n in COLLIDING:
        want = (b"second copy of " if n == COLLIDING[1] else b"data of ") + n
        assert arch.read(n.decode()) == want
    assert _names(arch) == sorted(["zarr.json"] + [n.decode() for n in COLLIDING])
    assert arch.read("collide-abcdefgX") is None
