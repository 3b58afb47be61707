"""Remote open + first tile: napari-ozx against zarr's ZipStore over an fsspec HTTP file object
and against fsspec's ZipFileSystem (``zip::http://...``), same archives, same server, same run.

A local threaded HTTP server (tests/servers.py) adds a fixed latency to every request (20 ms by
default, a nearby cloud region) and counts requests and bytes.  Two archives, written by our
RFC-9 writer from the same pixels: sharded (few entries) and unsharded (many entries: the
central directory is large, which is what separates the readers).

    python benchmarks/bench_remote.py            # 16 x 2048 x 2048 uint16
    python benchmarks/bench_remote.py --small    # 4 x 2048 x 2048, a quick run
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import napari_ozx  # noqa: E402
from napari_ozx.save.store import OzxWriteStore  # noqa: E402
from servers import RangeServer  # noqa: E402


def make_archive(path: Path, data: np.ndarray, *, sharded: bool) -> Path:
    store = OzxWriteStore(str(path))
    g = zarr.open_group(store, mode="w", zarr_format=3)
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}]}]}
    if sharded:
        a = g.create_array("0", shape=data.shape, chunks=(1, 256, 256),
                           shards=(1, 1024, 1024), dtype=data.dtype)
    else:
        a = g.create_array("0", shape=data.shape, chunks=(1, 64, 64), dtype=data.dtype)
    a[:] = data
    store.close()
    return path


def open_ours(url):
    return napari_ozx.open_ozx(url)["0"]


def open_zipstore(url):
    import fsspec

    f = fsspec.open(url, mode="rb").open()
    # ZipStore asserts a Path but hands it to zipfile.ZipFile, which reads file objects too
    store = zarr.storage.ZipStore("unused.zip", mode="r")
    store.path = f
    return zarr.open_group(store=store, mode="r")["0"]


def open_zipfs(url):
    return zarr.open_group("zip::" + url, mode="r", zarr_format=3)["0"]


READERS = [
    ("napari-ozx", open_ours),
    ("zarr ZipStore(fsspec HTTP file)", open_zipstore),
    ("fsspec ZipFileSystem zip::http", open_zipfs),
]


def measure(srv: RangeServer, url: str, opener, expected: np.ndarray, tile: int) -> dict:
    srv.stats.reset()
    t0 = time.perf_counter()
    arr = opener(url)
    t_open = time.perf_counter() - t0
    n_open, b_open = srv.stats.requests, srv.stats.bytes_sent
    t1 = time.perf_counter()
    first = arr[0, :tile, :tile]
    t_tile = time.perf_counter() - t1
    assert np.array_equal(first, expected[0, :tile, :tile]), "wrong pixels"
    n_tile = srv.stats.requests
    t2 = time.perf_counter()
    z, m = expected.shape[0] // 2, expected.shape[1] // 2
    sel = (z, slice(m, m + tile), slice(m, m + tile))  # the middle of the file: no cache helps
    last = arr[sel]
    t_last = time.perf_counter() - t2
    assert np.array_equal(last, expected[sel]), "wrong pixels"
    return {
        "open_s": t_open, "open_req": n_open, "open_mb": b_open / 1e6,
        "tile_s": t_tile, "tile_req": n_tile - n_open,
        "total_s": t_open + t_tile,
        "last_s": t_last, "last_req": srv.stats.requests - n_tile,
        "total_mb": srv.stats.bytes_sent / 1e6,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a quick run on small archives")
    ap.add_argument("--latency", type=float, default=0.020, help="seconds added per request")
    ap.add_argument("--mbps", type=float, default=0.0,
                    help="simulated link speed in Mbit/s per response (default: unlimited)")
    args = ap.parse_args(argv)
    shape = (4, 2048, 2048) if args.small else (16, 2048, 2048)
    data = np.random.default_rng(0).integers(0, 4096, shape).astype("uint16")
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-", dir="/tmp"))
    try:
        paths = {
            "sharded": make_archive(tmp / "sharded.ozx", data, sharded=True),
            "unsharded": make_archive(tmp / "unsharded.ozx", data, sharded=False),
        }
        with RangeServer() as srv:
            urls = {k: srv.put(f"/{k}.ozx", p.read_bytes()) for k, p in paths.items()}
            # warm-up: imports and first-use costs of every reader, off the clock
            for _, opener in READERS:
                try:
                    opener(urls["sharded"])[0, :8, :8]
                except Exception:
                    pass
            srv.set(latency=args.latency, bandwidth=args.mbps * 1e6 / 8)
            link = f"{args.mbps:g} Mbit/s per response" if args.mbps else "unlimited bandwidth"
            print(f"array {shape} uint16, latency {args.latency * 1000:.0f} ms per request, "
                  f"{link}, "
                  "first tile = one 256x256 inner chunk (sharded) / 64x64 chunk (unsharded); "
                  "mid tile = the same in the middle of the middle plane; MB all = bytes served")
            head = (f"{'archive':<10} {'entries':>7} {'reader':<32} {'open s':>7} {'req':>4} "
                    f"{'MB':>6} {'tile s':>7} {'req':>4} {'open+tile s':>11} "
                    f"{'mid tile s':>11} {'req':>4} {'MB all':>7}")
            print(head)
            print("-" * len(head))
            for kind, url in urls.items():
                tile = 256 if kind == "sharded" else 64
                n_entries = len(napari_ozx.open_ozx(paths[kind]).store.archive.full_index())
                for name, opener in READERS:
                    try:
                        r = measure(srv, url, opener, data, tile)
                    except Exception as e:  # a peer that cannot do it: say so, keep going
                        print(f"{kind:<10} {n_entries:>7} {name:<32} failed: "
                              f"{type(e).__name__}: {str(e)[:60]}")
                        continue
                    print(f"{kind:<10} {n_entries:>7} {name:<32} {r['open_s']:>7.2f} "
                          f"{r['open_req']:>4} {r['open_mb']:>6.2f} {r['tile_s']:>7.3f} "
                          f"{r['tile_req']:>4} {r['total_s']:>11.3f} {r['last_s']:>11.3f} "
                          f"{r['last_req']:>4} {r['total_mb']:>7.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
