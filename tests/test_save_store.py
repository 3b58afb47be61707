"""napari_ozx.save.store: the zarr store that writes an archive (``OzxWriteStore``) as zarr and dask
use it: threads writing one array, what zarr asks of a store while it writes (read back, exists,
listing, delete), and a failure inside zarr's write that leaves the destination as it was.

What the archive looks like on disk (RFC-9 order, alignment, tools that accept it) is the
writer's: ``test_zip_writer.py``, whose ``ome_archive`` is written through this store."""

from __future__ import annotations

import os
import zipfile

import dask.array as da
import numpy as np
import pytest
import zarr

from archives import ROOT_META, layout
from napari_ozx import open_ozx
from napari_ozx.save.store import OzxWriteStore


def test_dask_threads_write_an_array(tmp_path):
    path = tmp_path / "dask.ozx"
    data = np.random.default_rng(3).integers(0, 255, size=(64, 256, 256), dtype="uint8")
    with OzxWriteStore(path) as store:
        g = zarr.open_group(store, mode="w", attributes={"ome": {"version": "0.5"}})
        arr = g.create_array("0", shape=data.shape, chunks=(4, 64, 64), shards=(8, 128, 128),
                             dtype="uint8")
        da.from_array(data, chunks=(8, 128, 128)).store(arr, lock=False, scheduler="threads")
    np.testing.assert_array_equal(open_ozx(path)["0"][:], data)
    assert layout(path).names[:2] == ["zarr.json", "0/zarr.json"]


def test_exception_inside_zarr_write_leaves_destination_untouched(tmp_path):
    dest = tmp_path / "existing.ozx"
    original = b"an older archive"
    dest.write_bytes(original)
    with pytest.raises(ValueError, match="halfway"):
        with OzxWriteStore(dest) as store:
            g = zarr.open_group(store, mode="w", attributes={"ome": {"version": "0.5"}})
            a = g.create_array("0", shape=(64, 64), chunks=(16, 16), dtype="uint16")
            a[:32] = 1
            raise ValueError("halfway")
    assert dest.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.ozx"]


def test_write_store_reads_back_lists_and_deletes(tmp_path):
    """What zarr asks of a store while it writes: read back, exists, listing, delete."""
    import asyncio

    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype

    proto = default_buffer_prototype()
    buf = proto.buffer.from_bytes
    path = tmp_path / "rw.ozx"
    store = OzxWriteStore(path)

    async def scenario():
        await store.set("zarr.json", buf(ROOT_META))
        await store.set("a/zarr.json", buf(b'{"x": 1}'))
        big = os.urandom(200_000)  # written from a worker thread
        await store.set("a/c/0", buf(big))
        await store.set("a/c/1", buf(b"small"))
        await store.set_if_not_exists("a/c/1", buf(b"other"))
        assert (await store.get("a/c/0", proto)).to_bytes() == big
        assert (await store.get("a/c/1", proto)).to_bytes() == b"small"
        r = await store.get("a/c/0", proto, RangeByteRequest(10, 20))
        assert r.to_bytes() == big[10:20]
        assert (await store.get("a/c/0", proto, OffsetByteRequest(199_990))).to_bytes() == \
            big[199_990:]
        assert (await store.get("a/c/0", proto, SuffixByteRequest(5))).to_bytes() == big[-5:]
        assert await store.exists("a/c/0") and not await store.exists("a/c/9")
        assert await store.get("nope", proto) is None
        assert sorted([k async for k in store.list_dir("")]) == ["a", "zarr.json"]
        assert sorted([k async for k in store.list_dir("a")]) == ["c", "zarr.json"]
        assert sorted([k async for k in store.list_prefix("a/c/")]) == ["a/c/0", "a/c/1"]
        await store.delete("a/c/1")
        assert not await store.exists("a/c/1")
        return big

    big = asyncio.run(scenario())
    store.close()
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["zarr.json", "a/zarr.json", "a/c/0"]
        assert zf.read("a/c/0") == big
        assert zf.testzip() is None
