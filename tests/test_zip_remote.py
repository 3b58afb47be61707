"""Opening .ozx archives over HTTP: request budget, pixels, failures (issue 6).

Every test talks to a real HTTP server on 127.0.0.1 (``servers.RangeServer``) that counts the
requests and bytes it answers; archives come from zarr + the stdlib ``zipfile``, Info-ZIP ``zip``,
our own RFC-9 writer, and the raw many-entry writer of ``archives.py``.
"""

from __future__ import annotations

import pickle
import shutil
import time

import numpy as np
import pytest
import zarr

import napari_ozx
from archives import environment_has_zip, many_row, zip_infozip, zip_stdlib
from napari_ozx import OzxError
from napari_ozx.save.store import OzxWriteStore
from napari_ozx.zip.remote import (
    ArchiveChangedError,
    RangeNotSupportedError,
    RemoteAccessError,
    RemoteNotFoundError,
    TruncatedResponseError,
)
from servers import RangeServer

SHAPE = (16, 512, 512)
CHUNKS = (1, 64, 64)
SHARDS = (8, 128, 128)
FAST_RETRY = {"retries": 2, "backoff": 0.001}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(6).integers(0, 4000, SHAPE).astype("uint16")


@pytest.fixture(scope="module")
def archives(tmp_path_factory, pixels) -> dict:
    """Sharded OME-style hierarchies zipped three ways: {kind: path}."""
    tmp = tmp_path_factory.mktemp("remote")
    src = tmp / "tree"
    g = zarr.open_group(str(src), mode="w", zarr_format=3)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}]}]}
    a = g.create_array("0", shape=SHAPE, chunks=CHUNKS, shards=SHARDS, dtype="uint16")
    a[:] = pixels
    out = {"stdlib": zip_stdlib(src, tmp / "stdlib.ozx")}
    if environment_has_zip():
        out["infozip"] = zip_infozip(src, tmp / "infozip.ozx")
    ours = tmp / "ours.ozx"
    store = OzxWriteStore(str(ours))
    w = zarr.open_group(store, mode="w", zarr_format=3)
    w.attrs["ome"] = g.attrs["ome"]
    b = w.create_array("0", shape=SHAPE, chunks=CHUNKS, shards=SHARDS, dtype="uint16")
    b[:] = pixels
    store.close()
    out["ours"] = ours
    shutil.rmtree(src)
    return out


@pytest.fixture(scope="module")
def server(archives):
    with RangeServer() as srv:
        for kind, path in archives.items():
            srv.put(f"/{kind}.ozx", path.read_bytes())
        yield srv


@pytest.fixture
def srv(server):
    server.set()
    server.stats.reset()
    yield server
    server.set()


# ---------------------------------------------------------------------------- the budget


@pytest.mark.parametrize("kind", ["stdlib", "ours"])
def test_open_then_one_inner_chunk_costs_two_requests(srv, archives, pixels, kind):
    url = srv.url(f"/{kind}.ozx")
    # A tail too small for the 16k-entry... here: for the whole file, so the directory and the
    # metadata each need a request of their own, as in a big archive.
    g = napari_ozx.open_ozx(url, storage_options={"tail_size": 1})
    arr = g["0"]
    assert srv.stats.requests <= 3, srv.stats.ranges
    assert arr.shape == SHAPE and arr.dtype == np.uint16
    srv.stats.reset()
    tile = arr[5, 128:192, 320:384]  # one inner chunk in the middle of a shard
    assert srv.stats.requests <= 2, srv.stats.ranges  # shard index + the chunk, no local header
    np.testing.assert_array_equal(tile, pixels[5, 128:192, 320:384])
    # pixels identical to the local read of the same archive
    local = napari_ozx.open_ozx(archives[kind])["0"]
    np.testing.assert_array_equal(arr[2:4, 100:300, 17:400], local[2:4, 100:300, 17:400])


def test_default_tail_reads_a_small_archive_directory_in_one_request(srv, pixels):
    g = napari_ozx.open_ozx(srv.url("/stdlib.ozx"))
    assert srv.stats.requests <= 2  # tail (with the whole directory) + the metadata block
    assert srv.stats.ranges[0][1] == len(srv.objects["/stdlib.ozx"][0])  # a suffix read
    np.testing.assert_array_equal(g["0"][15, -64:, -64:], pixels[15, -64:, -64:])


@pytest.mark.skipif(not environment_has_zip(), reason="Info-ZIP zip not installed")
def test_infozip_directory_entries_fall_back_to_local_headers(srv, pixels):
    """``zip -r`` adds directory entries (not in our index): inferring data offsets is then
    unsafe, so local headers are read - one extra request, never wrong bytes."""
    arr = napari_ozx.open_ozx(srv.url("/infozip.ozx"), storage_options={"tail_size": 1})["0"]
    srv.stats.reset()
    tile = arr[9, 0:64, 448:512]
    assert srv.stats.requests <= 3
    np.testing.assert_array_equal(tile, pixels[9, 0:64, 448:512])
    np.testing.assert_array_equal(arr[:], pixels)


def test_many_chunks_are_read_concurrently_within_the_bound(srv, pixels):
    latency = 0.1
    srv.set(latency=latency)
    arr = napari_ozx.open_ozx(
        srv.url("/ours.ozx"), storage_options={"max_concurrency": 4}
    )["0"]
    srv.stats.reset()
    t0 = time.perf_counter()
    np.testing.assert_array_equal(arr[:], pixels)
    elapsed = time.perf_counter() - t0
    n = srv.stats.requests
    assert n >= 16  # 32 shards (some share pinned bytes), read whole
    assert srv.stats.max_in_flight <= 4
    assert srv.stats.max_in_flight >= 2
    assert elapsed < n * latency  # overlapped, not one after another


def test_pickled_store_reads_the_same(srv, pixels):
    g = napari_ozx.open_ozx(srv.url("/ours.ozx"))
    store = pickle.loads(pickle.dumps(g.store))
    arr = zarr.open_array(store=store, path="0", mode="r")
    np.testing.assert_array_equal(arr[3, :64, :64], pixels[3, :64, :64])


# ---------------------------------------------------------------------------- 1M entries


@pytest.fixture(scope="module")
def million_server(million_ozx):
    """A server holding the session's 1M-entry archive at ``/million.ozx``."""
    with RangeServer() as srv:
        srv.put("/million.ozx", million_ozx.read_bytes())
        yield srv


@pytest.mark.slow
def test_million_entry_json_first_metadata_in_three_requests(million_server):
    srv = million_server
    srv.stats.reset()
    g = napari_ozx.open_ozx(srv.url("/million.ozx"))
    arr = g["a"]
    assert arr.shape == (1_000_000 - 2, 16)
    assert srv.stats.requests <= 3, srv.stats.ranges
    assert srv.stats.bytes_sent < 1_000_000, srv.stats.bytes_sent
    # The first data entry needs the whole directory (~60 MB, read once, in big blocks);
    # afterwards one chunk is one request (its data offset inferred, no local header).
    srv.stats.reset()
    t0 = time.perf_counter()
    np.testing.assert_array_equal(arr[777_777], many_row(777_777))
    elapsed = time.perf_counter() - t0
    end = g.store.archive.end
    pieces = -(-end.cd_size // (4 << 20))  # fetched in 4 MiB pieces, concurrently
    assert srv.stats.requests <= pieces + 1, srv.stats.ranges  # + the chunk itself
    assert srv.stats.max_in_flight > 1
    print(f"first chunk: directory of {end.cd_size / 1e6:.0f} MB in {srv.stats.requests} "
          f"requests, {elapsed:.2f} s")
    srv.stats.reset()
    np.testing.assert_array_equal(arr[123_456], many_row(123_456))
    assert srv.stats.requests == 1


# ---------------------------------------------------------------------------- failures


def test_server_ignoring_range_is_refused_without_downloading(srv):
    srv.set(ignore_range=True)
    url = srv.url("/ours.ozx")
    size = len(srv.objects["/ours.ozx"][0])
    t0 = time.perf_counter()
    with pytest.raises(RangeNotSupportedError) as e:
        napari_ozx.open_ozx(url)
    assert time.perf_counter() - t0 < 2
    assert url in str(e.value) and "Range" in str(e.value)
    assert isinstance(e.value, OzxError)
    # the suffix read, then the same bytes by offset (a server may lack suffix ranges only)
    assert srv.stats.requests == 2
    assert srv.stats.ranges == [None, None]  # it answered 200 both times ...
    # ... and the client hung up instead of reading the 8 MB body (the server's write of it
    # failed; at most what fits the socket buffers went out)
    assert size > 5_000_000
    assert srv.stats.bytes_sent < size


def test_server_without_suffix_ranges_costs_one_dropped_answer(srv, pixels):
    srv.set(no_suffix=True)
    g = napari_ozx.open_ozx(srv.url("/ours.ozx"))
    assert srv.stats.ranges[0] is None  # the suffix read was answered 200 and dropped
    assert srv.stats.bytes_sent < len(srv.objects["/ours.ozx"][0])
    np.testing.assert_array_equal(g["0"][2, :64, :64], pixels[2, :64, :64])


def test_404_and_403_name_the_url(srv):
    url = srv.url("/missing.ozx")
    with pytest.raises(RemoteNotFoundError, match="404") as e:
        napari_ozx.open_ozx(url)
    assert url in str(e.value)
    srv.set(status=403)
    with pytest.raises(RemoteAccessError, match="403") as e:
        napari_ozx.open_ozx(srv.url("/ours.ozx"))
    assert srv.url("/ours.ozx") in str(e.value)


def test_truncated_body_is_retried_then_reported(srv):
    srv.set(truncate=True)
    with pytest.raises(TruncatedResponseError, match="gave up after 3 attempts") as e:
        napari_ozx.open_ozx(srv.url("/ours.ozx"), storage_options=FAST_RETRY)
    assert srv.url("/ours.ozx") in str(e.value)
    assert srv.stats.requests == 3


def test_short_range_is_reported(srv):
    arr = napari_ozx.open_ozx(srv.url("/stdlib.ozx"), storage_options=FAST_RETRY)["0"]
    srv.set(short=True)
    with pytest.raises(TruncatedResponseError, match="server sent") as e:
        arr[1, 200:300, 200:300]
    assert "stdlib.ozx" in str(e.value)


def test_transient_5xx_is_retried(archives, pixels):
    with RangeServer(fail_first=2) as own:  # its own server: no other client's requests
        url = own.put("/ours.ozx", archives["ours"].read_bytes())
        g = napari_ozx.open_ozx(url, storage_options=FAST_RETRY)
        np.testing.assert_array_equal(g["0"][0, :64, :64], pixels[0, :64, :64])
        assert g.store.archive.source.retried == 2


def test_object_changed_while_open(srv, archives, pixels):
    path = "/changing.ozx"
    srv.put(path, archives["ours"].read_bytes())
    arr = napari_ozx.open_ozx(srv.url(path), storage_options=FAST_RETRY)["0"]
    np.testing.assert_array_equal(arr[0, :64, :64], pixels[0, :64, :64])
    srv.put(path, archives["stdlib"].read_bytes())  # replaced by another archive
    with pytest.raises(ArchiveChangedError, match="changed while it was open"):
        arr[7, 300:400, 300:400]


# ---------------------------------------------------------------------------- S3 and fsspec


@pytest.fixture(scope="module")
def s3(archives):
    """moto's S3 server on 127.0.0.1 with fake boto-style credentials in the environment
    (found by the standard AWS credential chain); yields its endpoint URL."""
    import os

    from servers import moto_s3

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with moto_s3() as endpoint:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket="lab")
            data = archives["ours"].read_bytes()
            client.put_object(Bucket="lab", Key="img/ours.ozx", Body=data)
            client.put_object(Bucket="lab", Key="public/ours.ozx", Body=data, ACL="public-read")
            yield endpoint
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_s3_with_credential_chain_and_custom_endpoint(s3, pixels):
    g = napari_ozx.open_ozx("s3://lab/img/ours.ozx", storage_options={"endpoint_url": s3})
    source = g.store.archive.source
    arr = g["0"]
    assert source.requests <= 2
    before = source.requests
    np.testing.assert_array_equal(arr[6, 256:320, 64:128], pixels[6, 256:320, 64:128])
    assert source.requests - before <= 2
    np.testing.assert_array_equal(arr[:, :100, :100], pixels[:, :100, :100])


def test_s3_anonymous(s3, pixels):
    g = napari_ozx.open_ozx(
        "s3://lab/public/ours.ozx", storage_options={"endpoint_url": s3, "anon": True}
    )
    np.testing.assert_array_equal(g["0"][0, :64, :64], pixels[0, :64, :64])
    # a private object, anonymously: a clear refusal
    with pytest.raises(RemoteAccessError, match="403"):
        napari_ozx.open_ozx(
            "s3://lab/img/ours.ozx", storage_options={"endpoint_url": s3, "anon": True}
        )


def test_s3_missing_key_and_bucket(s3):
    with pytest.raises(RemoteNotFoundError, match="NoSuchKey") as e:
        napari_ozx.open_ozx("s3://lab/nope.ozx", storage_options={"endpoint_url": s3})
    assert "s3://lab/nope.ozx" in str(e.value)
    with pytest.raises(RemoteNotFoundError, match="NoSuchBucket"):
        napari_ozx.open_ozx("s3://nobucket/a.ozx", storage_options={"endpoint_url": s3})


def test_any_fsspec_url(archives, pixels):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/remote-test/ours.ozx", archives["ours"].read_bytes())
    try:
        arr = napari_ozx.open_ozx("memory://remote-test/ours.ozx")["0"]
        np.testing.assert_array_equal(arr[4, 64:128, 0:64], pixels[4, 64:128, 0:64])
    finally:
        fs.rm("/remote-test/ours.ozx")


def test_cli_info_reads_a_url(srv, capsys):
    from napari_ozx.cli import main

    url = srv.url("/ours.ozx")
    assert main(["info", "--json", url]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert any(n.get("path") == "0" and n.get("shape") == list(SHAPE) for n in doc["nodes"]), doc
    assert srv.stats.requests <= 2


def test_s3_without_any_credentials_falls_back_to_anonymous(s3, pixels, monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    g = napari_ozx.open_ozx("s3://lab/public/ours.ozx", storage_options={"endpoint_url": s3})
    np.testing.assert_array_equal(g["0"][1, :64, :64], pixels[1, :64, :64])
    assert g.store.archive.source._anon_fallback  # the chain found nothing: unsigned requests


def test_neighbouring_inner_chunks_share_requests(srv, pixels):
    """zarr reads the inner chunks of a partly needed shard one after another; small reads go
    through aligned blocks, so neighbours cost one request, not one each."""
    arr = napari_ozx.open_ozx(srv.url("/ours.ozx"))["0"]
    arr[0, :8, :8]  # directory decoded, layout learnt
    srv.stats.reset()
    region = arr[9, 10:120, 5:125]  # 4 inner chunks (64 x 64) of one shard (128 x 128)
    np.testing.assert_array_equal(region, pixels[9, 10:120, 5:125])
    assert srv.stats.requests <= 2, srv.stats.ranges  # index + one block holding the chunks
    without = napari_ozx.open_ozx(srv.url("/ours.ozx"), storage_options={"cache_bytes": 0})["0"]
    without[0, :8, :8]
    srv.stats.reset()
    np.testing.assert_array_equal(without[9, 10:120, 5:125], pixels[9, 10:120, 5:125])
    assert srv.stats.requests == 5  # index + 4 chunks: what the block cache saves


def test_s3_object_replaced_while_open(s3, archives, pixels):
    import boto3

    client = boto3.client("s3", endpoint_url=s3)
    client.put_object(Bucket="lab", Key="tmp/changing.ozx", Body=archives["ours"].read_bytes())
    arr = napari_ozx.open_ozx(
        "s3://lab/tmp/changing.ozx", storage_options={"endpoint_url": s3, **FAST_RETRY}
    )["0"]
    np.testing.assert_array_equal(arr[0, :64, :64], pixels[0, :64, :64])
    client.put_object(Bucket="lab", Key="tmp/changing.ozx", Body=archives["stdlib"].read_bytes())
    with pytest.raises(ArchiveChangedError, match="changed while it was open") as e:
        arr[12, 300:400, 300:400]
    assert "s3://lab/tmp/changing.ozx" in str(e.value)


def test_unreachable_host_is_a_remote_error():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/a.ozx"
    with pytest.raises(OzxError, match="gave up after 2 attempts") as e:
        napari_ozx.open_ozx(url, storage_options={"retries": 1, "backoff": 0.001})
    assert url in str(e.value)


def _child_read(store, q):
    try:
        arr = zarr.open_array(store=store, path="0", mode="r")
        q.put(np.asarray(arr[11, 192:256, 64:128]))
    except BaseException as e:  # report, do not hang the parent
        q.put(repr(e))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_store_reads_in_a_child_process(srv, pixels, method):
    import multiprocessing as mp

    g = napari_ozx.open_ozx(srv.url("/ours.ozx"))
    np.testing.assert_array_equal(g["0"][0, :64, :64], pixels[0, :64, :64])  # parent used it
    ctx = mp.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_child_read, args=(g.store, q))
    p.start()
    got = q.get(timeout=60)
    p.join(timeout=30)
    assert not isinstance(got, str), got
    np.testing.assert_array_equal(got, pixels[11, 192:256, 64:128])


def test_unknown_protocol_is_a_clear_error():
    with pytest.raises(OzxError, match="fsspec") as e:
        napari_ozx.open_ozx("nosuchproto://bucket/a.ozx")
    assert "nosuchproto://bucket/a.ozx" in str(e.value)
