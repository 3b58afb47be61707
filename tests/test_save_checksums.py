"""Self-checking archives (issue 13, item 1): every inner chunk we write carries a checksum
(zstd: the frame's content checksum; blosc, none: zarr's crc32c codec; gzip: its own CRC), so
zarr-python (ZipStore), TensorStore (zip kvstore + zarr3), ngff-zarr and napari-ozx read our
archives with identical pixels and refuse a chunk with one flipped byte.

The damaged archives get their ZIP CRC-32 fields rewritten to match the flipped bytes: what
refuses them is the chunk's own checksum, not the ZIP layer (a ranged read of a STORED entry
cannot check the entry's CRC anyway).  The control: the same damage in an archive saved with
``checksum=False`` is read back silently as wrong pixels.
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
import zlib

import numpy as np
import pytest
import zarr

from napari_ozx import open_ozx, write_ozx

SHAPE = (300, 400)
ENTRY = "0/c/1/1"  # a shard of level 0, inside the image


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(13)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (1000 + 5 * yy + 3 * xx + rng.integers(0, 50, SHAPE)).astype("uint16")


def _save(tmp_path, pixels, name, **options):
    path = tmp_path / name
    write_ozx(path, pixels, axes="yx", chunks=(64, 64), shards=(128, 128), **options)
    return path


def _inner_chunks(path, entry):
    """[(offset in the entry, length)] of every inner chunk of shard ``entry``."""
    with zipfile.ZipFile(path) as z:
        data = z.read(entry)
        meta = json.loads(z.read("0/zarr.json"))
    conf = meta["codecs"][0]["configuration"]
    shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
    per_shard = np.prod([s // c for s, c in zip(shard_shape, conf["chunk_shape"], strict=True)])
    crc = 4 if len(conf["index_codecs"]) == 2 else 0
    index = np.frombuffer(data[len(data) - 16 * per_shard - crc: len(data) - crc], "<u8")
    return [(int(o), int(n)) for o, n in index.reshape(-1, 2) if o != 2**64 - 1]


def flip_byte(path, out, entry=ENTRY, chunk=0):
    """A copy of ``path`` with one byte flipped in the middle of an inner chunk of ``entry``,
    the entry's CRC-32 (local header and central directory) rewritten to match."""
    shutil.copyfile(path, out)
    offset, length = _inner_chunks(path, entry)[chunk]
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(entry)
        cd_at = z.start_dir
        assert info.compress_type == zipfile.ZIP_STORED
    with open(out, "r+b") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        n, e = struct.unpack("<HH", local[26:30])
        data_at = info.header_offset + 30 + n + e
        f.seek(data_at)
        data = bytearray(f.read(info.file_size))
        data[offset + length // 2] ^= 0x5A
        f.seek(data_at)
        f.write(data)
        crc = struct.pack("<I", zlib.crc32(data))
        f.seek(info.header_offset + 14)
        f.write(crc)
        # the central-directory record of the entry: its CRC at +16
        f.seek(cd_at)
        cd = f.read()
        at, name = 0, entry.encode()
        while cd[at: at + 4] == b"PK\x01\x02":
            nlen, elen, clen = struct.unpack("<HHH", cd[at + 28: at + 34])
            if cd[at + 46: at + 46 + nlen] == name:
                f.seek(cd_at + at + 16)
                f.write(crc)
                break
            at += 46 + nlen + elen + clen
        else:
            raise AssertionError(f"no central-directory record for {entry}")
    with zipfile.ZipFile(out) as z:  # the ZIP layer finds nothing wrong
        assert z.testzip() is None
    return out


# ----------------------------------------------------------------------------- readers


def read_zipstore(path):
    store = zarr.storage.ZipStore(path, mode="r")
    try:
        return zarr.open_group(store=store, mode="r")["0"][...]
    finally:
        store.close()


def read_tensorstore(path):
    import tensorstore as ts

    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "zip",
                                                   "base": f"file://{path}", "path": "0/"}},
                  read=True).result()
    return arr.read().result()


def read_ngff_zarr(path):
    import ngff_zarr as nz

    return np.asarray(nz.from_ngff_zarr(str(path)).images[0].data)


def read_ours(path):
    return open_ozx(path)["0"][...]


READERS = {"zarr ZipStore": read_zipstore, "TensorStore": read_tensorstore,
           "ngff-zarr": read_ngff_zarr, "napari-ozx": read_ours}


def test_every_inner_chunk_carries_a_crc32c(tmp_path, pixels):
    path = _save(tmp_path, pixels, "a.ozx")
    with zipfile.ZipFile(path) as z:
        arrays = [name for name in z.namelist() if name.endswith("zarr.json")
                  and json.loads(z.read(name)).get("node_type") == "array"]
        assert arrays
        for name in arrays:
            inner = json.loads(z.read(name))["codecs"][0]["configuration"]["codecs"]
            assert [c["name"] for c in inner] == ["bytes", "zstd"], name
            assert inner[1]["configuration"]["checksum"] is True, name
    off = _save(tmp_path, pixels, "off.ozx", checksum=False)
    with zipfile.ZipFile(off) as z:
        inner = json.loads(z.read("0/zarr.json"))["codecs"][0]["configuration"]["codecs"]
    assert inner[1]["configuration"]["checksum"] is False
    lz = _save(tmp_path, pixels, "lz.ozx", codec="blosc-lz4")
    with zipfile.ZipFile(lz) as z:
        inner = json.loads(z.read("0/zarr.json"))["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == ["bytes", "blosc", "crc32c"]
    gz = _save(tmp_path, pixels, "gz.ozx", codec="gzip")
    with zipfile.ZipFile(gz) as z:  # gzip ends in its own CRC-32: nothing added
        inner = json.loads(z.read("0/zarr.json"))["codecs"][0]["configuration"]["codecs"]
    assert [c["name"] for c in inner] == ["bytes", "gzip"]


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("codec", ["zstd", "blosc-lz4", "none"])
def test_peers_read_checksummed_archives_with_identical_pixels(tmp_path, pixels, reader,
                                                               codec):
    path = _save(tmp_path, pixels, "a.ozx", codec=codec)
    np.testing.assert_array_equal(np.asarray(READERS[reader](path)), pixels)


def _refusers(codec):
    """zarrs (ngff-zarr's reader) does not check crc32c inside shards: only zstd there."""
    return list(READERS) if codec == "zstd" else [r for r in READERS if r != "ngff-zarr"]


@pytest.mark.parametrize("codec,reader", [(c, r) for c in ("zstd", "none", "blosc-lz4")
                                          for r in _refusers(c)])
def test_every_reader_refuses_a_chunk_with_one_flipped_byte(tmp_path, pixels, reader, codec):
    path = _save(tmp_path, pixels, "a.ozx", codec=codec)
    bad = flip_byte(path, tmp_path / "bad.ozx")
    with pytest.raises(Exception) as info:
        READERS[reader](bad)
    assert not isinstance(info.value, AssertionError)
    # the undamaged shards still read: the region outside shard (1, 1)
    np.testing.assert_array_equal(open_ozx(bad)["0"][:128], pixels[:128])


@pytest.mark.parametrize("chunk", [0, 1, 2, 3])
def test_a_flipped_byte_anywhere_in_a_zstd_chunk_is_refused(tmp_path, pixels, chunk):
    path = _save(tmp_path, pixels, "a.ozx")
    bad = flip_byte(path, tmp_path / "bad.ozx", chunk=chunk)
    for reader in READERS.values():
        with pytest.raises(Exception) as info:
            reader(bad)
        assert not isinstance(info.value, AssertionError)


@pytest.mark.parametrize("reader", ["zarr ZipStore", "TensorStore", "napari-ozx"])
def test_without_the_checksum_the_same_damage_reads_as_wrong_pixels(tmp_path, pixels, reader):
    """The control: what catches the flipped byte above is the chunk checksum."""
    path = _save(tmp_path, pixels, "off.ozx", codec="none", checksum=False)
    bad = flip_byte(path, tmp_path / "bad.ozx")
    got = np.asarray(READERS[reader](bad))
    assert got.shape == pixels.shape
    assert (got != pixels).sum() == 1


def test_reading_for_a_viewer_blanks_the_chunk_but_a_save_refuses_it(tmp_path, pixels,
                                                                     monkeypatch):
    """Layer data from a damaged archive: the viewer's read answers fill value for the bad
    chunk (reported once); a save of that data fails naming the entry and writes nothing."""
    from napari_ozx._reader import read_ozx
    from napari_ozx.read import guard
    from napari_ozx.save.api import write_layers

    bad = flip_byte(_save(tmp_path, pixels, "a.ozx", pyramid_levels=1), tmp_path / "bad.ozx")
    import napari_ozx._reader as reader

    messages = []
    monkeypatch.setattr(reader, "_notify_chunk", messages.append)  # napari's notification
    ((data, meta, kind),) = read_ozx(str(bad))
    try:
        level0 = data[0] if isinstance(data, list) else data
        shown = np.asarray(level0 + 0)  # an edit: forces the pixels to be encoded again
        assert (shown[128:192, 128:192] == 0).all()
        assert len(messages) == 1 and "'0/c/1/1'" in messages[0] and str(bad) in messages[0]
        out = tmp_path / "out.ozx"
        with pytest.raises(Exception, match="checksum"):
            write_layers(out, [(level0 + 0, {"name": "edited"}, "image")])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ozx", "bad.ozx"]
        np.asarray(level0)  # drawn again: no second report
        assert len(messages) == 1
        ((again, _, _),) = read_ozx(str(bad))  # opened again: reported again, once
        np.asarray(again[0] if isinstance(again, list) else again)
        assert len(messages) == 2 and messages[1] == messages[0]
    finally:
        guard.set_reporter(None)
