"""The streaming RFC-9 writer (napari_ozx.zip.writer): archives other tools accept, read back
with the same pixels by every reader, in RFC-9 order, aligned, atomic.

The zarr store around it (``OzxWriteStore``) has its own tests in ``test_save_store.py``; here it
only makes ``ome_archive``, an image as ome-zarr-py writes it."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

from archives import ROOT_META, layout
from napari_ozx import open_ozx
from napari_ozx.errors import NotOmeZarrError, OzxError
from napari_ozx.save.store import OzxWriteStore
from napari_ozx.zip import ZipArchive, records
from napari_ozx.zip.writer import PADDING_EXTRA_ID, OzxWriter

EXPECTED_COMMENT = b'{"ome":{"version":"0.5","zipFile":{"centralDirectory":{"jsonFirst":true}}}}'


def _extra_fields(extra: bytes) -> dict[int, bytes]:
    out, p = {}, 0
    while p + 4 <= len(extra):
        fid, flen = struct.unpack_from("<HH", extra, p)
        out[fid] = extra[p + 4 : p + 4 + flen]
        p += 4 + flen
    assert p == len(extra), "extra field does not parse into whole fields"
    return out


def _local_extra(path: Path, header_offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(header_offset)
        hdr = f.read(records.LOCAL.size)
        nlen, elen = struct.unpack_from("<HH", hdr, 26)
        f.seek(header_offset + records.LOCAL.size + nlen)
        return f.read(elen)


def _no_temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="session")
def ome_archive(tmp_path_factory):
    """A sharded multiscale OME-Zarr 0.5 image written by ome-zarr-py through dask (threads)
    straight into our write store."""
    from ome_zarr.writer import write_image

    d = tmp_path_factory.mktemp("writer")
    path = d / "image.ozx"
    rng = np.random.default_rng(7)
    data = rng.integers(0, 60000, size=(2, 512, 384), dtype="uint16")
    with OzxWriteStore(path) as store:
        group = zarr.open_group(store, mode="w")
        write_image(
            da.from_array(data, chunks=(1, 128, 128)),
            group,
            axes="cyx",
            storage_options=dict(chunks=(1, 64, 64), shards=(1, 128, 128)),
        )
    return path, data


def test_ome_zarr_py_writes_through_the_store(ome_archive):
    path, data = ome_archive
    assert not _no_temp_files(path.parent)
    grp = open_ozx(path)
    assert grp.attrs["ome"]["version"] == "0.5"
    assert [d["path"] for d in grp.attrs["ome"]["multiscales"][0]["datasets"]][0] == "s0"
    np.testing.assert_array_equal(grp["s0"][:], data)


def test_stdlib_zipfile_testzip(ome_archive):
    path, _ = ome_archive
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.comment == EXPECTED_COMMENT
        assert zf.infolist() and all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_infozip_unzip_t(ome_archive):
    path, _ = ome_archive
    r = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors detected" in r.stdout
    assert "warning" not in (r.stdout + r.stderr).lower()


def test_7zip_t(ome_archive):
    path, _ = ome_archive
    r = subprocess.run(["7z", "t", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Everything is Ok" in r.stdout
    assert "Warnings" not in r.stdout and "WARNING" not in r.stdout.upper().replace(
        "WARNINGS: 0", ""
    )


def test_identical_pixels_in_every_reader(ome_archive):
    import ngff_zarr

    path, data = ome_archive
    ours = open_ozx(path)["s0"][:]
    with zarr.storage.ZipStore(path, mode="r") as zs:
        theirs = zarr.open_group(zs, mode="r")["s0"][:]
    ms = ngff_zarr.from_ngff_zarr(str(path))
    ngff = np.asarray(ms.images[0].data)
    for got in (ours, theirs, ngff):
        np.testing.assert_array_equal(got, data)
    # Every pyramid level agrees between zarr's ZipStore and ours.
    with zarr.storage.ZipStore(path, mode="r") as zs:
        g = zarr.open_group(zs, mode="r")
        for k in ("s1", "s2"):
            np.testing.assert_array_equal(open_ozx(path)[k][:], g[k][:])


def test_rfc9_layout(ome_archive):
    path, _ = ome_archive
    lay = layout(path)
    names = lay.names
    assert len(names) == len(set(names)), "a name occurs twice"
    # Root zarr.json first in the file and in the central directory.
    assert names[0] == "zarr.json"
    assert lay.local_headers[0] == 0
    # Other metadata follows, breadth-first, then the rest by name.
    meta = [n for n in names if n.endswith("zarr.json")]
    n_meta = len(meta)
    assert names[:n_meta] == meta
    assert meta[1:] == sorted(meta[1:], key=lambda n: (n.count("/"), n))
    assert names[n_meta:] == sorted(names[n_meta:])
    # Metadata also comes first in the file.
    first_data = min(lay.local_headers[n_meta:])
    assert max(lay.local_headers[:n_meta]) < first_data
    # ZIP64 end record and locator present, whatever the size.
    assert lay.zip64_eocd is not None and lay.zip64_locator is not None
    assert ZipArchive(path).end.zip64
    # ZIP64 extra on every central and local header; data payloads page-aligned.
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    for info, data_off in zip(infos, lay.data_offsets, strict=True):
        assert records.ZIP64_EXTRA_ID in _extra_fields(info.extra), info.filename
        local = _extra_fields(_local_extra(path, info.header_offset))
        assert records.ZIP64_EXTRA_ID in local, info.filename
        if not info.filename.endswith("zarr.json"):
            assert data_off % 4096 == 0, (info.filename, data_off)
            if data_off != info.header_offset + records.LOCAL.size + len(info.filename) + 20:
                assert PADDING_EXTRA_ID in local


def test_metadata_rewritten_after_data_beyond_the_reserve(tmp_path):
    """zarr rewrites a zarr.json after data: still one entry per name, metadata in front,
    payloads still aligned, even when the new metadata no longer fits the reserved room."""
    path = tmp_path / "grow.ozx"
    chunks = {f"a/c/{i}": os.urandom(5000 + i) for i in range(5)}
    with OzxWriter(path, metadata_reserve=512) as w:
        w.set_metadata("zarr.json", b"{}")
        w.set_metadata("a/zarr.json", b'{"v": 1}')
        for k, v in chunks.items():
            w.write(k, v)
        big_root = json.dumps(
            {"zarr_format": 3, "node_type": "group",
             "attributes": {"ome": {"version": "0.5"}, "pad": "x" * 20000}}
        ).encode()
        w.set_metadata("zarr.json", big_root)
        w.set_metadata("a/zarr.json", b'{"v": 2}')
        w.write("a/c/1", b"rewritten")
    lay = layout(path)
    assert lay.names == ["zarr.json", "a/zarr.json", "a/c/0", "a/c/1", "a/c/2", "a/c/3", "a/c/4"]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("zarr.json") == big_root
        assert zf.read("a/zarr.json") == b'{"v": 2}'
        assert zf.read("a/c/1") == b"rewritten"
        assert zf.read("a/c/3") == chunks["a/c/3"]
    for name, off in zip(lay.names[2:], lay.data_offsets[2:], strict=True):
        assert off % 4096 == 0, name
    assert subprocess.run(["unzip", "-tq", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("reserve", [0, 64 * 1024, 1 << 20])
def test_metadata_reserve_gap_is_filled(tmp_path, reserve):
    """Whatever room is left in front of the data is padding inside local headers, not loose
    bytes: every byte before the central directory belongs to an entry."""
    path = tmp_path / "gap.ozx"
    with OzxWriter(path, metadata_reserve=reserve) as w:
        w.set_metadata("zarr.json", ROOT_META)
        w.write("c/0", b"x" * 100)
    lay = layout(path)
    with zipfile.ZipFile(path) as zf:
        sizes = [i.file_size for i in zf.infolist()]
    ends = sorted(zip(lay.local_headers, lay.data_offsets, sizes, strict=True))
    assert len(ends) == 2  # zarr.json and c/0
    pos = 0
    for header, data_off, size in ends:
        assert header == pos
        pos = data_off + size
    assert pos == lay.cd_offset
    r = subprocess.run(["7z", "t", str(path)], capture_output=True, text=True)
    assert "Everything is Ok" in r.stdout, r.stdout


def test_concurrent_writes_from_threads(tmp_path):
    path = tmp_path / "threads.ozx"
    payload = {f"x/c/{i}": os.urandom(1000 + 37 * i) for i in range(400)}
    items = list(payload.items())
    with OzxWriter(path) as w:
        w.set_metadata("zarr.json", ROOT_META)

        def work(part):
            for k, v in part:
                w.write(k, v)

        threads = [threading.Thread(target=work, args=(items[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert {n: zf.read(n) for n in payload} == payload


def test_streamed_entry_is_not_held_in_memory(tmp_path):
    path = tmp_path / "stream.ozx"
    block = os.urandom(1 << 20)
    n = 48
    tracemalloc.start()
    try:
        with OzxWriter(path) as w:
            w.set_metadata("zarr.json", ROOT_META)
            w.write_stream("big", (block for _ in range(n)), n * len(block))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a {n} MiB entry"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("big")
        assert info.file_size == n * len(block)
        assert info.CRC == zlib.crc32(block * n)
        assert zf.testzip() is None


def test_open_entry_appends_as_it_goes_and_others_wait(tmp_path):
    """An entry of unknown size is appended piece by piece; writes from other threads wait
    for it, one from its own thread is refused (it would never end); a dropped entry leaves
    nothing; every tool reads the result."""
    path = tmp_path / "open.ozx"
    pieces = [os.urandom(n) for n in (10, 300_000, 1, 70_000)]
    with OzxWriter(path) as w:
        w.set_metadata("zarr.json", ROOT_META)
        w.write("a/c/0", b"before")
        e = w.open_entry("a/c/1")
        offsets = [e.append(p) for p in pieces[:2]]
        other = threading.Thread(target=w.write, args=("a/c/2", b"after"))
        other.start()
        other.join(0.2)
        assert other.is_alive(), "a write from another thread did not wait"
        with pytest.raises(OzxError, match="still open"):
            w.write("a/c/3", b"from the same thread")
        offsets += [e.append(p) for p in pieces[2:]]
        e.commit()
        other.join(5)
        assert not other.is_alive()
        dropped = w.open_entry("a/c/4")
        dropped.append(os.urandom(5000))
        dropped.drop()
        w.write("a/c/5", b"last")
    assert offsets == [0, 10, 300_010, 300_011]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("a/c/1") == b"".join(pieces)
        assert zf.read("a/c/2") == b"after" and zf.read("a/c/5") == b"last"
        assert "a/c/4" not in zf.namelist() and "a/c/3" not in zf.namelist()
    r = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    lay = layout(path)
    assert lay.names == ["zarr.json", "a/c/0", "a/c/1", "a/c/2", "a/c/5"]


def test_open_entry_of_an_aborted_archive_releases_waiters(tmp_path):
    w = OzxWriter(tmp_path / "ab.ozx")
    w.set_metadata("zarr.json", ROOT_META)
    w.open_entry("a/c/0").append(b"x" * 100)
    errors = []

    def write():
        try:
            w.write("a/c/1", b"y")
        except OzxError as e:
            errors.append(e)

    t = threading.Thread(target=write)
    t.start()
    t.join(0.1)
    w.abort()
    t.join(5)
    assert not t.is_alive() and errors and "closed" in str(errors[0])
    assert not (tmp_path / "ab.ozx").exists()


def _write_then_fail(path: Path, exc: BaseException):
    with OzxWriter(path) as w:
        w.set_metadata("zarr.json", ROOT_META)
        w.write("c/0", os.urandom(100_000))
        raise exc


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_leaves_destination_untouched(tmp_path, exc):
    dest = tmp_path / "existing.ozx"
    original = os.urandom(12345)
    dest.write_bytes(original)
    with pytest.raises(type(exc)):
        _write_then_fail(dest, exc)
    assert dest.read_bytes() == original
    assert _no_temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.ozx"]


def test_successful_write_replaces_destination(tmp_path):
    dest = tmp_path / "existing.ozx"
    dest.write_bytes(b"old")
    with OzxWriter(dest) as w:
        w.set_metadata("zarr.json", ROOT_META)
    with zipfile.ZipFile(dest) as zf:
        assert zf.namelist() == ["zarr.json"]
    assert _no_temp_files(tmp_path) == []


def test_no_root_metadata_is_refused_and_nothing_written(tmp_path):
    dest = tmp_path / "x.ozx"
    with pytest.raises(NotOmeZarrError, match="root zarr.json"):
        with OzxWriter(dest) as w:
            w.write("a/c/0", b"data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/../b", "a\\b", "", "dir/"])
def test_unsafe_names_refused(tmp_path, name):
    with OzxWriter(tmp_path / "x.ozx") as w:
        w.set_metadata("zarr.json", ROOT_META)
        with pytest.raises(OzxError, match="safe relative entry name"):
            w.write(name, b"x")
    with zipfile.ZipFile(tmp_path / "x.ozx") as zf:
        assert zf.namelist() == ["zarr.json"]


def test_stream_shorter_than_announced_is_an_error(tmp_path):
    dest = tmp_path / "x.ozx"
    with pytest.raises(OzxError, match="instead of the announced"):
        with OzxWriter(dest) as w:
            w.set_metadata("zarr.json", ROOT_META)
            w.write_stream("c/0", [b"abc"], 10)
    assert list(tmp_path.iterdir()) == []


def test_batched_central_directory_matches_the_record_packer(tmp_path):
    """The numpy-built central directory is byte for byte the records module's headers,
    including non-ASCII names and sizes/offsets beyond 32 bits."""
    from napari_ozx.zip.writer import _Entry

    rng = np.random.default_rng(1)
    keys = [f"a/c/{i}/é{i * 7}".encode() for i in range(500)]
    offs = rng.integers(0, 2**40, 500)
    sizes = rng.integers(0, 2**35, 500)
    crcs = rng.integers(0, 2**32, 500)
    w = OzxWriter(tmp_path / "x.ozx")
    try:
        batched = w._central_headers(keys, offs, sizes, crcs)
        single = b"".join(
            w._central_header(_Entry(k, int(o), int(s), int(c)))
            for k, o, s, c in zip(keys, offs, sizes, crcs, strict=True)
        )
    finally:
        w.abort()
    assert batched == single
