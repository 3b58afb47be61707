"""The zarr Store contract of OzxStore, with zarr's own LocalStore over the unzipped files as the
oracle: every ByteRequest kind, get_partial_values, exists, list, list_prefix, list_dir, getsize,
equality, pickling (round trip, process pools, dask processes, fork), and refused writes."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.storage import LocalStore

import archives
from napari_ozx import OzxStore, open_ozx

PROTO = default_buffer_prototype()


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module", params=["stored", "deflated"])
def pair(request, tmp_path_factory):
    """(OzxStore, LocalStore over the same files, expected pixels)."""
    base = tmp_path_factory.mktemp(f"contract-{request.param}")
    expected = archives.make_v3_hierarchy(base / "tree", shards="end")
    # Add a file with an awkward name and an empty file.
    (base / "tree" / "odd dir").mkdir()
    (base / "tree" / "odd dir" / "ünï cödé.bin").write_bytes(bytes(range(256)) * 3)
    (base / "tree" / "empty").write_bytes(b"")
    comp = zipfile.ZIP_DEFLATED if request.param == "deflated" else zipfile.ZIP_STORED
    path = archives.zip_stdlib(base / "tree", base / "a.ozx", compression=comp)
    return OzxStore(path), LocalStore(str(base / "tree"), read_only=True), expected


def all_keys(local):
    """Every key of the directory store, sorted; never empty (the tests loop over them)."""
    async def go():
        return sorted([k async for k in local.list()])

    keys = run(go())
    assert keys, "the directory store lists no key"
    return keys


REQUESTS = [
    None,
    RangeByteRequest(0, 1),
    RangeByteRequest(3, 17),
    RangeByteRequest(5, 5),
    RangeByteRequest(10, 10_000_000),  # past the end: truncated, like a file
    OffsetByteRequest(0),
    OffsetByteRequest(7),
    OffsetByteRequest(10_000_000),
    SuffixByteRequest(1),
    SuffixByteRequest(40),
    SuffixByteRequest(10_000_000),
]


@pytest.mark.parametrize("req", REQUESTS, ids=repr)
def test_get_every_byte_request_kind_matches_local_store(pair, req):
    ozx, local, _ = pair
    for key in all_keys(local):
        want = run(local.get(key, PROTO, req))
        got = run(ozx.get(key, PROTO, req))
        assert want is not None
        assert got is not None, key
        assert got.to_bytes() == want.to_bytes(), (key, req)
        # the synchronous path gives the same bytes
        assert ozx.get_sync(key, prototype=PROTO, byte_range=req).to_bytes() == want.to_bytes()


@pytest.mark.parametrize("req", [None, RangeByteRequest(0, 4), OffsetByteRequest(2),
                                 SuffixByteRequest(3)], ids=repr)
def test_get_missing_key_is_none(pair, req):
    ozx, _, _ = pair
    for key in ["nope", "0/c/99/99", "zarr.json/x", "", "0/", "0"]:
        assert run(ozx.get(key, PROTO, req)) is None, key
        assert run(ozx.exists(key)) is False


def test_get_partial_values_matches_local_store(pair):
    ozx, local, _ = pair
    keys = all_keys(local)
    requests = [(k, r) for k in keys for r in REQUESTS[:6]]
    want = run(local.get_partial_values(PROTO, requests))
    # (LocalStore raises for a missing key here; a store answers None, as its get does.)
    got = run(ozx.get_partial_values(PROTO, requests + [("missing", None)]))
    assert got[-1] is None
    got = got[:-1]
    assert len(got) == len(want)
    for (k, r), w, g in zip(requests, want, got, strict=True):
        if w is None:
            assert g is None, (k, r)
        else:
            assert g.to_bytes() == w.to_bytes(), (k, r)


def test_exists_getsize_list_match_local_store(pair):
    ozx, local, _ = pair
    keys = all_keys(local)
    for key in keys:
        assert run(ozx.exists(key)), key
        assert run(ozx.getsize(key)) == run(local.getsize(key)), key
    with pytest.raises(FileNotFoundError):
        run(ozx.getsize("not/there"))

    async def lst(store, method, *args):
        return sorted([k async for k in getattr(store, method)(*args)])

    assert run(lst(ozx, "list")) == keys
    for prefix in ["", "0", "0/", "0/c/", "labels/", "labels/cells/0/", "odd dir/", "zz"]:
        want = run(lst(local, "list_prefix", prefix))
        assert run(lst(ozx, "list_prefix", prefix)) == want, prefix
    for prefix in ["", "0", "0/c", "labels", "labels/cells", "odd dir", "empty", "zz"]:
        assert run(lst(ozx, "list_dir", prefix)) == run(lst(local, "list_dir", prefix)), prefix


def test_getsize_prefix_and_zarr_helpers(pair):
    ozx, local, expected = pair
    assert run(ozx.getsize_prefix("0")) == run(local.getsize_prefix("0"))
    for prefix in ["", "0", "labels/cells", "nothing-here"]:
        assert run(ozx.is_empty(prefix)) == run(local.is_empty(prefix)), prefix
    g = zarr.open_group(store=ozx, mode="r")
    assert sorted(g.group_keys()) == ["labels"]
    assert sorted(g.array_keys()) == ["0", "1"]
    np.testing.assert_array_equal(g["0"][:], expected["0"])


def test_equality_and_hash(pair, tmp_path):
    ozx, _, _ = pair
    path = ozx.archive.name
    again = OzxStore(path)
    assert again == ozx and hash(again) == hash(ozx)
    other_path = tmp_path / "copy.ozx"
    other_path.write_bytes(open(path, "rb").read())
    other = OzxStore(other_path)
    assert other != ozx
    assert ozx != LocalStore(str(tmp_path))
    assert str(path) in str(ozx) and str(path) in repr(ozx)


def test_read_only_writes_refused(pair, tmp_path):
    ozx, _, _ = pair
    assert ozx.supports_writes is False
    assert ozx.supports_deletes is False
    assert ozx.supports_partial_writes is False
    assert ozx.read_only is True
    buf = cpu.Buffer.from_bytes(b"x")
    with pytest.raises(ValueError):
        run(ozx.set("new", buf))
    with pytest.raises(ValueError):
        run(ozx.delete("zarr.json"))
    with pytest.raises(ValueError):
        OzxStore(ozx.archive.name, read_only=False)
    g = zarr.open_group(store=ozx, mode="r")
    with pytest.raises(ValueError):
        g.create_array("x", shape=(2,), dtype="uint8")
    with pytest.raises(ValueError):
        g["0"][0, 0] = 1
    assert run(ozx.exists("new")) is False
    # Nothing in the archive changed.
    assert run(ozx.get("zarr.json", PROTO)) is not None


def _sum_chunk(store, key_rows):
    g = zarr.open_group(store=store, mode="r")
    return [int(g["0"][r].astype("int64").sum()) for r in key_rows]


def test_pickle_round_trip(pair):
    ozx, _, expected = pair
    ozx.archive.full_index()
    clone = pickle.loads(pickle.dumps(ozx))
    assert clone == ozx
    assert clone.read_only and not clone.supports_writes
    assert clone.archive is not ozx.archive
    np.testing.assert_array_equal(
        zarr.open_group(store=clone, mode="r")["0"][:], expected["0"]
    )
    # A pickled store is small: the address, not the index.
    assert len(pickle.dumps(ozx)) < 2000


def test_reading_in_a_process_pool(pair):
    ozx, _, expected = pair
    rows = list(range(expected["0"].shape[0]))
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futs = [pool.submit(_sum_chunk, ozx, rows[i::2]) for i in range(2)]
        got = [f.result(timeout=120) for f in futs]
    want = [[int(expected["0"][r].astype("int64").sum()) for r in rows[i::2]] for i in range(2)]
    assert got == want


def test_dask_processes_scheduler(pair):
    ozx, _, expected = pair
    arr = da.from_zarr(zarr.open_group(store=ozx, mode="r")["0"])
    with dask.config.set(scheduler="processes", num_workers=2):
        got = arr.compute()
    np.testing.assert_array_equal(got, expected["0"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_reading_after_fork(pair):
    """A store opened (and read) in the parent keeps working in a forked child and in the
    parent afterwards: descriptors are per process, no inherited lock can hang."""
    ozx, _, expected = pair
    g = zarr.open_group(store=ozx, mode="r")
    np.testing.assert_array_equal(g["0"][0], expected["0"][0])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            ok = np.array_equal(g["0"][:], expected["0"]) and np.array_equal(
                g["labels/cells/0"][:], expected["labels/cells/0"]
            )
            os.write(w, b"1" if ok else b"0")
        except BaseException as e:  # pragma: no cover - reported to the parent
            os.write(w, repr(e).encode()[:200] or b"E")
        finally:
            os._exit(0)
    os.close(w)
    msg = os.read(r, 300)
    os.close(r)
    os.waitpid(pid, 0)
    assert msg == b"1", msg
    np.testing.assert_array_equal(g["0"][:], expected["0"])


def test_many_threads_read_at_once(pair):
    ozx, local, _ = pair
    keys = all_keys(local)
    want = {k: run(local.get(k, PROTO)).to_bytes() for k in keys}

    def read(k):
        return k, ozx.get_sync(k, prototype=PROTO).to_bytes()

    with ThreadPoolExecutor(8) as pool:
        for k, data in pool.map(read, keys * 10):
            assert data == want[k]


def test_open_ozx_returns_read_only_group(pair):
    ozx, _, expected = pair
    g = open_ozx(ozx.archive.name)
    assert isinstance(g, zarr.Group)
    assert g.read_only
    assert g.attrs["ome"]["version"] == "0.5"
    np.testing.assert_array_equal(g["labels/cells/0"][:], expected["labels/cells/0"])
