"""RFC-9 archive comment and the jsonFirst partial central directory.

A wrapping ByteSource counts what the reader touches: opening a 100k-entry jsonFirst archive and
reading its metadata must touch only a tiny fraction of the central directory; the full directory
is decoded when a chunk is first asked for; an archive that lies about jsonFirst still serves its
late ``zarr.json`` (and warns); an absent or broken comment warns and never fails.
"""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest
import zarr

import archives
from archives import CountingSource
from napari_ozx import OzxStore, OzxWarning, open_ozx
from napari_ozx.zip import ZipArchive


@pytest.fixture(scope="module")
def big_json_first(tmp_path_factory):
    path = tmp_path_factory.mktemp("jf") / "big.ozx"
    return archives.many_entry_archive(path, 100_000)


@pytest.fixture(scope="module")
def big_liar(tmp_path_factory):
    """jsonFirst claimed, but ``late/zarr.json`` comes after 100k chunk entries."""
    path = tmp_path_factory.mktemp("jf") / "liar.ozx"
    return archives.many_entry_archive(path, 100_000, late_metadata=True)


@pytest.mark.parametrize("cheap_scan", [False, True], ids=["remote-like", "local-like"])
def test_open_and_metadata_touch_a_tiny_part_of_the_directory(big_json_first, cheap_scan):
    src = CountingSource(big_json_first, cheap_scan=cheap_scan)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OzxWarning)
        g = open_ozx(src)
    arch = g.store.archive
    cd_size = arch.end.cd_size
    assert cd_size > 5_000_000
    assert g.attrs["ome"]["version"] == "0.5"
    arr = g["a"]  # the array's zarr.json, from the prefix
    assert arr.shape == (100_000 - 2, archives.ROW)
    assert not arch.is_fully_indexed
    # The tail (64 KiB + a little), the first central-directory block and two small entries.
    assert src.touched < 0.05 * cd_size, (src.touched, cd_size, src.reads)
    assert src.touched < 300_000


def test_first_chunk_decodes_the_full_directory(big_json_first):
    src = CountingSource(big_json_first, cheap_scan=False)
    g = open_ozx(src)
    arch = g.store.archive
    before = src.touched
    np.testing.assert_array_equal(g["a"][54_321], archives.many_row(54_321))
    assert arch.is_fully_indexed
    assert src.touched - before >= arch.end.cd_size  # the rest of the directory was read once
    n = len(arch.full_index())
    assert n == 100_000
    after = src.touched
    np.testing.assert_array_equal(g["a"][99_997], archives.many_row(99_997))
    assert src.touched - after < 1000  # a chunk read is its local header and its data


@pytest.mark.parametrize("cheap_scan", [False, True], ids=["remote-like", "local-like"])
def test_lying_json_first_archive_still_serves_late_metadata(big_liar, cheap_scan):
    src = CountingSource(big_liar, cheap_scan=cheap_scan)
    g = open_ozx(src)
    with pytest.warns(OzxWarning, match="jsonFirst") as rec:
        late = g["late"]
    assert any("late/zarr.json" in str(w.message) for w in rec)
    assert any(str(big_liar) in str(w.message) for w in rec)
    assert late.shape == (1, archives.ROW)
    np.testing.assert_array_equal(late[0], archives.many_row(7))
    assert sorted(g.array_keys()) == ["a", "late"]
    arch = g.store.archive
    assert arch.json_first_violations == ["late/zarr.json"]


def test_lying_archive_listing_sees_everything(big_liar):
    with pytest.warns(OzxWarning, match="jsonFirst"):
        store = OzxStore(big_liar)
        names = list(store.archive.names("late/"))
    assert names == ["late/zarr.json", "late/c/0/0"]


def test_honest_archive_missing_metadata_is_absent_without_full_decode(big_json_first):
    """A zarr.json that does not exist (the user asks for a node that is not there) is answered
    None; on a local file that costs a scan of raw bytes, not a decoded directory."""
    src = CountingSource(big_json_first, cheap_scan=True)
    g = open_ozx(src)
    with pytest.raises(KeyError):
        g["nope"]
    assert not g.store.archive.is_fully_indexed
    # Zarr v2 names in a v3 hierarchy (zarr probes them): absent at once.
    assert g.store.get_sync(".zgroup") is None
    assert g.store.get_sync("a/.zarray") is None


@pytest.mark.parametrize(
    "comment, problem",
    [
        (b"", "no archive comment"),
        (b"made by hand", "not UTF-8 JSON"),
        (b"\xff\xfe\x00 not utf-8", "not UTF-8 JSON"),
        (b"[1, 2]", 'no "ome"'),
        (b'{"ome": "0.5"}', 'no "ome"'),
        (b'{"ome": {}}', "version"),
        (b'{"ome": {"version": 5}}', "version"),
        (b"PK\x05\x06 a fake end record inside the comment PK\x05\x06\x00\x00", "JSON"),
    ],
)
def test_absent_or_bad_comment_warns_and_reads(tmp_path, comment, problem):
    path = archives.write_raw_zip(tmp_path / "c.ozx", archives.many_entries(10), comment=comment)
    with pytest.warns(OzxWarning, match=problem) as rec:
        g = open_ozx(path)
    ours = [w for w in rec if issubclass(w.category, OzxWarning)]
    assert ours and all(str(path) in str(w.message) for w in ours)
    np.testing.assert_array_equal(g["a"][3], archives.many_row(3))
    assert g.store.archive.comment.json_first is False
    assert g.store.archive.is_fully_indexed  # no jsonFirst promise: the whole directory


@pytest.mark.parametrize(
    "cd, json_first",
    [
        ({"jsonFirst": True}, True),
        ({"jsonFirst": False}, False),
        ({"jsonFirst": "true"}, False),
        ({"jsonFirst": 1}, False),
        ({}, False),
        ("yes", False),
    ],
)
def test_json_first_flag_is_read_strictly(tmp_path, cd, json_first):
    comment = json.dumps({"ome": {"version": "0.5", "zipFile": {"centralDirectory": cd}}})
    path = archives.write_raw_zip(tmp_path / "c.ozx", archives.many_entries(100),
                                  comment=comment.encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error", OzxWarning)
        arch = ZipArchive(path)
    assert arch.comment.json_first is json_first
    assert arch.comment.version == "0.5"
    assert arch.is_fully_indexed is (not json_first)
    assert arch.read("a/c/42/0") == archives.many_row(42).tobytes()


@pytest.mark.parametrize("zip64", [False, True])
def test_longest_comment(tmp_path, zip64):
    """A 65,535-byte comment puts the end record at the very start of the search window (and a
    ZIP64 locator just before it, outside the window)."""
    comment = json.dumps({"ome": {"version": "0.5"}, "pad": ""}).encode()
    comment = comment[:-2] + b" " * (65_535 - len(comment)) + comment[-2:]
    assert len(comment) == 65_535
    json.loads(comment)
    path = archives.write_raw_zip(tmp_path / "c.ozx", archives.many_entries(50), comment=comment,
                                  zip64=zip64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OzxWarning)
        g = open_ozx(path)
    assert g.store.archive.end.zip64 is zip64
    np.testing.assert_array_equal(g["a"][47], archives.many_row(47))


def test_json_first_with_directory_entries_first(tmp_path):
    """Some writers list directory entries among the metadata: they do not end the prefix."""
    entries = [archives.RawEntry("a/"), archives.RawEntry("zarr.json", archives.many_root_meta()),
               archives.RawEntry("a/c/"),
               archives.RawEntry("a/zarr.json", archives.many_array_meta(3))]
    entries += [archives.RawEntry(f"a/c/{i}/0", archives.many_row(i).tobytes()) for i in range(3)]
    path = archives.write_raw_zip(tmp_path / "d.ozx", entries)
    src = CountingSource(path, cheap_scan=False)
    g = open_ozx(src)
    assert g["a"].shape == (3, archives.ROW)
    assert not g.store.archive.is_fully_indexed
    np.testing.assert_array_equal(g["a"][:], np.stack([archives.many_row(i) for i in range(3)]))
    assert sorted(g.store.archive.names()) == ["a/c/0/0", "a/c/1/0", "a/c/2/0", "a/zarr.json",
                                               "zarr.json"]


def test_zarr_open_group_on_store_of_json_first_archive(big_json_first):
    store = OzxStore(CountingSource(big_json_first, cheap_scan=False))
    g = zarr.open_group(store=store, mode="r")
    assert g.attrs["ome"]["version"] == "0.5"
    assert not store.archive.is_fully_indexed


def test_prefix_longer_than_one_block(tmp_path):
    """4,000 arrays: the metadata prefix spans several central-directory blocks."""
    meta = archives.many_array_meta(1)
    entries = [("zarr.json", archives.many_root_meta())]
    entries += [(f"group-{i:05d}/array/zarr.json", meta) for i in range(4000)]
    entries += [(f"group-{i:05d}/array/c/0/0", archives.many_row(i).tobytes()) for i in range(4000)]
    path = archives.write_raw_zip(tmp_path / "wide.ozx", entries)
    src = CountingSource(path, cheap_scan=False)
    g = open_ozx(src)
    arch = g.store.archive
    prefix_bytes = arch._prefix_end
    assert prefix_bytes > 4 * 65536  # more than the first block
    last = g["group-03999/array"]
    assert last.shape == (1, archives.ROW)
    assert not arch.is_fully_indexed
    assert len(arch.metadata_names()) == 4001
    np.testing.assert_array_equal(last[0], archives.many_row(3999))
    assert arch.is_fully_indexed


def test_many_threads_trigger_the_full_decode_at_once(big_json_first):
    """Dask threads asking for chunks right after open: one full decode, every read right."""
    from concurrent.futures import ThreadPoolExecutor

    src = CountingSource(big_json_first, cheap_scan=False)
    g = open_ozx(src)
    arr = g["a"]
    rows = list(range(0, 99_998, 997))
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: arr[i], rows))
    for i, row in zip(rows, got, strict=True):
        np.testing.assert_array_equal(row, archives.many_row(i))
    cd = g.store.archive.end.cd_size
    assert src.touched < 2 * cd  # the directory was read once, not once per thread


def test_ranges_read_exactly_the_requested_span(big_json_first):
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    src = CountingSource(big_json_first, cheap_scan=False)
    store = OzxStore(src)
    arch = store.archive
    arch.full_index()
    key = "a/c/777/0"
    whole = arch.read(key)  # learns the data offset from the local header
    info = arch.info(key)
    with open(big_json_first, "rb") as f:  # the data offset, from the local header
        f.seek(info.header_offset)
        nlen, elen = struct.unpack("<HH", f.read(30)[26:30])
    data_off = info.header_offset + 30 + nlen + elen
    for req, lo, hi in [(RangeByteRequest(3, 17), 3, 17), (OffsetByteRequest(5), 5, 32),
                        (SuffixByteRequest(4), 28, 32)]:
        src.reads.clear()
        got = store.get_sync(key, byte_range=req).to_bytes()
        assert got == whole[lo:hi]
        assert len(src.reads) == 1, src.reads
        off, n = src.reads[0]
        assert n == hi - lo
        assert off == data_off + lo
    assert info.uncompressed_size == 32


class SlowSource(CountingSource):
    """Every read takes 50 ms (a slow disk or a network round trip)."""

    def read(self, offset, length):
        import time

        time.sleep(0.05)
        return super().read(offset, length)


def test_reads_from_many_threads_are_not_serialised(tmp_path):
    import time
    from concurrent.futures import ThreadPoolExecutor

    path = archives.many_entry_archive(tmp_path / "s.ozx", 40)
    src = SlowSource(path, cheap_scan=False)
    arch = ZipArchive(src)
    arch.full_index()
    names = [f"a/c/{i}/0" for i in range(16)]
    for n in names:
        arch.read(n, 0, 1)  # learn the data offsets first (one local-header read each)
    t = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda n: arch.read(n, 0, 8), names))
    dt = time.perf_counter() - t
    assert got == [archives.many_row(i).tobytes()[:8] for i in range(16)]
    assert dt < 0.4, f"16 reads of 50 ms took {dt:.2f} s: reads are serialised"
