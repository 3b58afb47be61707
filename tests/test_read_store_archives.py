"""Every kind of archive a user may hold opens and reads back the bytes and pixels that were zipped.

Archives come from the stdlib ``zipfile`` (stored, deflated, ZIP64 forced and not, with and without
comment, data descriptors), Info-ZIP ``zip -0 -r`` (ZIP64 forced, streamed to a pipe), p7zip's
ZIP writer, ngff-zarr's own ``.ozx`` writer and our raw writer (ZIP64 for every entry; > 65,535
entries; entries beyond 4 GiB in a sparse file).  Each is read through
``open_ozx``, ``zarr.open_group``, ``zarr.open_array`` and ``dask.array.from_zarr``.
"""

from __future__ import annotations

import shutil
import warnings
import zipfile

import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

import archives
from helpers import random_pixels
from napari_ozx import OzxStore, OzxWarning, open_ozx
from napari_ozx.zip import ZipArchive

PROTO = default_buffer_prototype()

# kind -> (hierarchy, zip tool, options, warns about the comment)
KINDS = {
    "stdlib-stored-jsonfirst": ("v3", "stdlib", {}, False),
    "stdlib-stored-nocomment": ("v3", "stdlib", {"comment": None, "json_first": False}, True),
    "stdlib-stored-plaincomment": ("v3", "stdlib", {"comment": archives.COMMENT_PLAIN}, False),
    "stdlib-deflated": ("v3", "stdlib", {"compression": zipfile.ZIP_DEFLATED}, False),
    "stdlib-zip64-forced": ("v3", "stdlib", {"force_zip64": True}, False),
    "stdlib-deflated-zip64": (
        "v3", "stdlib", {"compression": zipfile.ZIP_DEFLATED, "force_zip64": True}, False),
    "stdlib-sharded-index-end": ("v3-shard-end", "stdlib", {}, False),
    "stdlib-sharded-index-start": ("v3-shard-start", "stdlib", {}, False),
    "stdlib-sharded-deflated": ("v3-shard-end", "stdlib",
                                {"compression": zipfile.ZIP_DEFLATED}, False),
    "stdlib-v2": ("v2", "stdlib", {"comment": None}, True),
    "stdlib-v2-jsonfirst": ("v2", "stdlib", {}, False),
    "stdlib-v2-deflated": ("v2", "stdlib",
                           {"compression": zipfile.ZIP_DEFLATED, "comment": None}, True),
    "infozip-v3": ("v3", "infozip", {}, True),
    "infozip-v3-sharded-start": ("v3-shard-start", "infozip", {}, True),
    "infozip-v2": ("v2", "infozip", {}, True),
    "infozip-zip64-forced": ("v3", "infozip", {"extra_args": ("-fz",)}, True),
    "infozip-stream-data-descriptors": ("v3-shard-end", "infozip-stream", {}, True),
    "7z-stored": ("v3", "7z", {"level": 0}, True),
    "7z-deflated": ("v3-shard-start", "7z", {"level": 5}, True),
    "7z-v2-deflated": ("v2", "7z", {"level": 9}, True),
    "stdlib-unseekable-data-descriptors": ("v3", "stdlib-unseekable", {}, False),
    "stdlib-unseekable-deflated": (
        "v2", "stdlib-unseekable", {"compression": zipfile.ZIP_DEFLATED}, False),
    "raw-zip64-always": ("v3", "raw64", {}, False),
    "raw-prepended-stub": ("v3", "rawstub", {}, False),
}


@pytest.fixture(scope="session")
def hierarchies(tmp_path_factory):
    base = tmp_path_factory.mktemp("hier")
    out = {}
    for key, build in (
        ("v3", lambda p: archives.make_v3_hierarchy(p)),
        ("v3-shard-end", lambda p: archives.make_v3_hierarchy(p, shards="end")),
        ("v3-shard-start", lambda p: archives.make_v3_hierarchy(p, shards="start")),
        ("v2", lambda p: archives.make_v2_hierarchy(p)),
    ):
        d = base / key
        out[key] = (d, build(d))
    return out


@pytest.fixture(scope="session")
def archive_of_kind(hierarchies, tmp_path_factory):
    base = tmp_path_factory.mktemp("kinds")
    cache = {}

    def make(kind):
        if kind in cache:
            return cache[kind]
        hier, tool, opts, warns = KINDS[kind]
        src, expected = hierarchies[hier]
        out = base / f"{kind}.ozx"
        if tool == "stdlib":
            archives.zip_stdlib(src, out, **opts)
        elif tool in ("infozip", "infozip-stream"):
            if shutil.which("zip") is None:
                pytest.skip("Info-ZIP zip is not installed (Debian package zip)")
            build = archives.zip_infozip if tool == "infozip" else archives.zip_infozip_stream
            build(src, out, **opts)
        elif tool == "7z":
            if shutil.which("7z") is None:
                pytest.skip("7z is not installed (Debian package p7zip-full)")
            archives.zip_7z(src, out, **opts)
        elif tool == "stdlib-unseekable":
            archives.zip_stdlib_unseekable(src, out, **opts)
        elif tool in ("raw64", "rawstub"):
            files = archives.hierarchy_bytes(src)
            archives.write_raw_zip(
                out, list(files.items()), zip64=True,
                prefix=b"#!/bin/sh\necho this is a self-extractor stub\nexit 0\n" * 3
                if tool == "rawstub" else b"",
            )
        cache[kind] = (out, src, expected, warns)
        return cache[kind]

    return make


def _open_checked(path, warns):
    """open_ozx, asserting that an OzxWarning is given exactly when expected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = open_ozx(path)
    ours = [w for w in caught if issubclass(w.category, OzxWarning)]
    if warns:
        assert ours, "an archive without an RFC-9 comment must warn"
        assert ours and all(str(path) in str(w.message) for w in ours)
    else:
        assert not ours, [str(w.message) for w in ours]
    return g


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_reads_back_pixels_and_bytes(archive_of_kind, kind):
    path, src, expected, warns = archive_of_kind(kind)
    g = _open_checked(path, warns)
    for name, pixels in expected.items():
        arr = g[name]
        np.testing.assert_array_equal(arr[:], pixels)
        # a slice that crosses chunk (and shard) borders
        sl = tuple(slice(1, max(2, s - 3)) for s in pixels.shape)
        np.testing.assert_array_equal(arr[sl], pixels[sl])
    # Every file that was zipped, byte for byte, through the store.
    store = g.store
    files = archives.hierarchy_bytes(src)
    for name, data in files.items():
        buf = store.get_sync(name, prototype=PROTO)
        assert buf is not None, name
        assert buf.to_bytes() == data, name
    listed = sorted(_sync_list(store))
    assert listed == sorted(files)


def _sync_list(store):
    import asyncio

    async def go():
        return [k async for k in store.list()]

    return asyncio.run(go())


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_zarr_open_group_open_array_and_dask(archive_of_kind, kind):
    path, _src, expected, _warns = archive_of_kind(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OzxWarning)
        store = OzxStore(path)
    g = zarr.open_group(store=store, mode="r")
    for name, pixels in expected.items():
        np.testing.assert_array_equal(g[name][...], pixels)
        arr = zarr.open_array(store=store, path=name, mode="r")
        assert arr.shape == pixels.shape and arr.dtype == pixels.dtype
        np.testing.assert_array_equal(arr[...], pixels)
        d = da.from_zarr(arr)
        assert d.chunks[0][0] <= pixels.shape[0]
        np.testing.assert_array_equal(d.compute(scheduler="threads"), pixels)
        # the mean through dask equals the mean of the pixels (every chunk read once)
        assert float(d.astype("float64").mean().compute()) == pytest.approx(
            float(pixels.astype("float64").mean())
        )


@pytest.mark.parametrize("kind", ["stdlib-sharded-index-end", "stdlib-sharded-index-start"])
def test_sharded_inner_chunks_read_by_range(archive_of_kind, kind):
    """A shard's inner chunks are read as byte ranges of one entry (the sharding codec asks for
    the index by suffix or prefix, then for ranges): every inner chunk is right on its own."""
    path, _src, expected, _ = archive_of_kind(kind)
    g = open_ozx(path)
    arr = g["0"]
    meta = arr.metadata.to_dict()
    codec = meta["codecs"][0]
    assert codec["name"] == "sharding_indexed"
    assert codec["configuration"]["index_location"] == kind.rsplit("-", 1)[-1]
    pixels = expected["0"]
    for y in range(0, pixels.shape[0], 16):
        for x in range(0, pixels.shape[1], 16):
            np.testing.assert_array_equal(arr[y : y + 16, x : x + 16],
                                          pixels[y : y + 16, x : x + 16])
    d = da.from_zarr(arr, chunks=(16, 16))
    np.testing.assert_array_equal(d.compute(scheduler="threads"), pixels)


def test_zarr_v2_hierarchy_is_v2(archive_of_kind):
    path, _src, expected, _ = archive_of_kind("stdlib-v2")
    with pytest.warns(OzxWarning):
        g = open_ozx(path)
    assert g.metadata.zarr_format == 2
    assert g.attrs["multiscales"][0]["version"] == "0.4"
    assert sorted(g.array_keys()) == ["0"]
    assert g["sub/x"].dtype == np.float32
    np.testing.assert_array_equal(g["sub/x"][:], expected["sub/x"])


def test_ngff_zarr_archive(tmp_path_factory):
    """An .ozx written by ngff-zarr itself: its levels read back as written."""
    import ngff_zarr as nz

    pixels = random_pixels((96, 80), seed=9, high=60000)
    path = archives.ngff_zarr_archive(tmp_path_factory.mktemp("ngff") / "x.ozx", pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OzxWarning)  # ngff-zarr writes the RFC-9 comment
        g = open_ozx(path)
    ms = g.attrs["ome"]["multiscales"][0]
    paths = [d["path"] for d in ms["datasets"]]
    assert len(paths) == 2
    np.testing.assert_array_equal(g[paths[0]][:], pixels)
    # ngff-zarr's own reader agrees on the lower level
    ref = nz.from_ngff_zarr(str(path))
    np.testing.assert_array_equal(
        g[paths[1]][:], np.asarray(ref.images[1].data.compute())
    )
    arch = g.store.archive
    assert arch.comment.json_first is True
    assert arch.comment.version == "0.5"


def test_more_than_65535_entries(tmp_path):
    n = 70_003
    path = archives.many_entry_archive(tmp_path / "many.ozx", n)
    with zipfile.ZipFile(path) as zf:  # the stdlib agrees it is a valid archive
        assert len(zf.infolist()) == n
    g = open_ozx(path)
    arr = g["a"]
    assert arr.shape == (n - 2, archives.ROW)
    for i in (0, 1, 65534, 65535, 65536, n - 3):
        np.testing.assert_array_equal(arr[i], archives.many_row(i))
    assert g.store.archive.end.zip64 is True
    assert len(g.store.archive.full_index()) == n


def test_many_entries_without_zip64_records(tmp_path):
    """A pre-ZIP64 writer wraps the 16-bit entry count: the directory is still read whole."""
    n = 65_540
    path = archives.many_entry_archive(tmp_path / "wrapped.ozx", n, zip64=False)
    # A classic EOCD cannot hold 65540: pack_end_records(zip64=False) would refuse; ours wraps.
    g = open_ozx(path)
    assert g.store.archive.end.zip64 is False
    np.testing.assert_array_equal(g["a"][n - 3], archives.many_row(n - 3))


@pytest.mark.timeout(60)
def test_offsets_and_sizes_beyond_4_gib(tmp_path):
    path, content = archives.sparse_big_archive(tmp_path / "sparse.ozx")
    size = path.stat().st_size
    assert size > (8 << 30)
    assert path.stat().st_blocks * 512 < 64 << 20, "the archive must stay sparse"
    g = open_ozx(path)
    np.testing.assert_array_equal(g["a"][:], np.arange(16, dtype="uint8").reshape(4, 4))
    store = g.store
    arch = store.archive
    info = arch.info("big.bin")
    assert info.header_offset > (4 << 30)
    assert info.uncompressed_size == (4 << 30) + 4096
    head = content["big.bin"]
    got = store.get_sync("big.bin", prototype=PROTO, byte_range=RangeByteRequest(0, len(head)))
    assert got.to_bytes() == head
    # a range that spans the 4 GiB mark inside the entry: zeros (the hole)
    r = RangeByteRequest((4 << 30) - 8, (4 << 30) + 8)
    assert store.get_sync("big.bin", prototype=PROTO, byte_range=r).to_bytes() == bytes(16)
    suffix = store.get_sync("big.bin", prototype=PROTO, byte_range=SuffixByteRequest(10))
    assert suffix.to_bytes() == bytes(10)
    off = store.get_sync("big.bin", prototype=PROTO,
                         byte_range=OffsetByteRequest(info.uncompressed_size - 3))
    assert off.to_bytes() == bytes(3)
    assert store.get_sync("after-big", prototype=PROTO).to_bytes() == content["after-big"]
    # the stdlib agrees on every offset and size
    with zipfile.ZipFile(path) as zf:
        assert zf.infolist()
        for zi in zf.infolist():
            i = arch.info(zi.filename)
            assert (i.header_offset, i.uncompressed_size, i.crc32) == (
                zi.header_offset, zi.file_size, zi.CRC)
        assert zf.read("after-big") == content["after-big"]
    assert isinstance(arch, ZipArchive)


def test_whole_sparse_entry_crc_is_valid(tmp_path):
    """The helper's CRC for a mostly-hole entry is the real CRC (checked on a small one)."""
    import zlib

    head = b"abc"
    n = (3 << 20) + 5
    assert archives.crc32_zero_extend(zlib.crc32(head), n) == zlib.crc32(head + bytes(n))
    path = archives.write_raw_zip(tmp_path / "s.zip",
                                  [archives.RawEntry("s", head, sparse_size=len(head) + n)])
    with zipfile.ZipFile(path) as zf:
        assert zf.read("s") == head + bytes(n)  # the stdlib checks the CRC
    assert ZipArchive(path, warn=False).read("s") == head + bytes(n)


def test_infozip_zip64_to_a_pipe_is_broken_and_says_so(hierarchies, tmp_path):
    """Info-ZIP 3.0 ``zip -fz - . | cat`` marks the directory offset 0xFFFFFFFF but writes no
    ZIP64 end records: unzip, 7z and the stdlib cannot read its entries either.  We refuse it at
    once with our error, naming the archive."""
    from napari_ozx import CorruptArchiveError

    if shutil.which("zip") is None:
        pytest.skip("Info-ZIP zip is not installed")
    src, _ = hierarchies["v3"]
    path = archives.zip_infozip_stream(src, tmp_path / "fz-pipe.zip", extra_args=("-fz",))
    with pytest.raises(CorruptArchiveError, match="ZIP64") as ei:
        open_ozx(path)
    assert str(path) in str(ei.value)


def test_archive_written_by_zarr_zipstore_with_rewrites(tmp_path):
    """zarr's own ZipStore appends a second entry when a key is written twice (attributes
    updated after the data): we read what ZipStore itself reads back - the last entry."""
    from zarr.storage import ZipStore

    path = tmp_path / "zipstore.zip"
    pixels = random_pixels((40, 30), seed=11, high=60000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        store = ZipStore(path, mode="w")
        g = zarr.open_group(store=store, mode="w")
        arr = g.create_array("img", shape=pixels.shape, chunks=(16, 16), dtype=pixels.dtype)
        arr[:] = pixels
        arr[:16, :16] = pixels[:16, :16] + 1  # a chunk rewritten
        g.attrs["note"] = "updated after the data"
        store.close()
    with pytest.warns(OzxWarning, match="more than once"):
        ours = open_ozx(path)
    ref = zarr.open_group(store=ZipStore(path, mode="r"), mode="r")
    assert ours.attrs.asdict() == ref.attrs.asdict()
    assert ours.attrs["note"] == "updated after the data"
    np.testing.assert_array_equal(ours["img"][:], ref["img"][:])
    expected = pixels.copy()
    expected[:16, :16] += 1
    np.testing.assert_array_equal(ours["img"][:], expected)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_root_array_archive(tmp_path, zarr_format):
    """A zipped single array (no group): zarr.open_array over the store reads it."""
    pixels = random_pixels((33, 17), seed=12, dtype="int16", high=60000)
    d = tmp_path / "arr.zarr"
    arr = zarr.create_array(str(d), shape=pixels.shape, chunks=(8, 8), dtype=pixels.dtype,
                            zarr_format=zarr_format)
    arr[:] = pixels
    path = archives.zip_stdlib(d, tmp_path / "arr.ozx")
    store = OzxStore(path)
    got = zarr.open_array(store=store, mode="r")
    assert got.metadata.zarr_format == zarr_format
    np.testing.assert_array_equal(got[:], pixels)
    np.testing.assert_array_equal(da.from_zarr(got).compute(), pixels)
