"""Save benchmark (issue 5): a uint16 3D image saved as a sharded, zstd-compressed, mean-
downsampled pyramid by

* ``napari-ozx``: ``napari_ozx.write_ozx(path.ozx, image)``;
* ``ngff-zarr``: ``to_multiscales(..., method=DASK_BIN_SHRINK)`` (bin shrink = mean over 2x2x2
  bins) then ``to_ngff_zarr("x.ozx", chunks_per_shard=...)`` (it writes a temporary directory,
  then zips it);
* ``zarr dir``: zarr-python writing the same sharded pyramid to a directory with dask, each level
  computed from the level written before (``da.store`` of shard-aligned blocks, then
  ``da.from_zarr`` of that level) - what an archive must be compared with.

All use the same inner chunks (64^3), shards (256^3, 32 MiB), zstd level 3, the same lazy
source (a deterministic pattern plus noise, generated per block so no tool pays for input I/O),
the same levels (y, x and z halved down to one chunk) and dask's threaded scheduler.  Each runs
in a fresh process and fsyncs its output; peak RSS is the process high-water mark (VmHWM).

    python benchmarks/bench_write.py           # 4 GiB: (256, 2048, 4096)
    python benchmarks/bench_write.py --small   # 256 MiB: (64, 1024, 2048)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _mem import peak_rss_mib  # noqa: E402
from _runs import best_of, fsync_file, remove, validate_strict  # noqa: E402

CACHE = os.environ.get("OZX_BENCH_DIR", "/tmp/napari-ozx-bench")
FULL = (256, 2048, 4096)
SMALL = (64, 1024, 2048)
CHUNK = 64
SHARD = 256
LEVEL = 3
TOOLS = ["napari-ozx", "ngff-zarr", "zarr dir"]




def source(shape):
    """A lazy uint16 volume: smooth structure plus 4 bits of noise (compresses ~2-3x)."""
    import dask.array as da
    import numpy as np

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        (z0, z1), (y0, y1), (x0, x1) = loc
        zz = np.arange(z0, z1, dtype=np.float32)[:, None, None]
        yy = np.arange(y0, y1, dtype=np.float32)[None, :, None]
        xx = np.arange(x0, x1, dtype=np.float32)[None, None, :]
        base = 1000 + 800 * np.sin(zz / 17) * np.cos(yy / 23) + 600 * np.sin(xx / 31)
        seed = (z0 * 7919 + y0) * 104729 + x0
        noise = np.random.default_rng(seed).integers(0, 16, size=base.shape, dtype=np.uint16)
        return base.astype(np.uint16) + noise

    chunks = (CHUNK, SHARD, SHARD)
    return da.map_blocks(block, chunks=da.core.normalize_chunks(chunks, shape), dtype="uint16")


def n_levels(shape) -> int:
    n, s = 1, list(shape)
    while any(v > CHUNK for v in s):
        s = [-(-v // 2) for v in s]
        n += 1
    return n


def run_ours(shape, out):
    from napari_ozx import write_ozx

    write_ozx(out, source(shape), axes="zyx", chunks=(CHUNK,) * 3, shards=(SHARD,) * 3,
              codec="zstd", level=LEVEL, image_method="mean")


def run_ngff(shape, out):
    import ngff_zarr as nz
    from zarr.codecs import ZstdCodec

    image = nz.to_ngff_image(source(shape), dims=["z", "y", "x"])
    factors = [2 ** k for k in range(1, n_levels(shape))]
    ms = nz.to_multiscales(image, scale_factors=factors, method=nz.Methods.DASK_BIN_SHRINK,
                           chunks=CHUNK)
    nz.to_ngff_zarr(out, ms, version="0.5", chunks_per_shard=SHARD // CHUNK,
                    compressors=[ZstdCodec(level=LEVEL)])
    fsync_file(out)


def run_zarr_dir(shape, out):
    import dask.array as da
    import zarr
    from zarr.codecs import ZstdCodec

    from napari_ozx.save.pyramid import downsample

    root = zarr.open_group(out, mode="w", zarr_format=3)
    level = source(shape)
    paths = []
    for k in range(n_levels(shape)):
        if k:
            level = downsample(da.from_zarr(root[str(k - 1)]), (2, 2, 2), "mean")
        shp = tuple(level.shape)
        shards = tuple(min(SHARD, -(-s // CHUNK) * CHUNK) for s in shp)
        chunks = tuple(min(CHUNK, s) for s in shp)
        arr = root.create_array(str(k), shape=shp, dtype="uint16", chunks=chunks, shards=shards,
                                compressors=[ZstdCodec(level=LEVEL)], fill_value=0)
        da.store(level.rechunk(shards), arr, lock=False)
        paths.append(str(k))
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": n, "type": "space"} for n in "zyx"],
        "datasets": [{"path": p, "coordinateTransformations": [
            {"type": "scale", "scale": [2.0 ** int(p)] * 3}]} for p in paths]}]}
    for r, _, fs in os.walk(out):
        for f in fs:
            fsync_file(os.path.join(r, f))


def _size(path) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def worker(tool: str, shape, out: str) -> None:
    import dask

    dask.config.set(scheduler="threads")
    fn = {"napari-ozx": run_ours, "ngff-zarr": run_ngff, "zarr dir": run_zarr_dir}[tool]
    base = peak_rss_mib()
    t = time.perf_counter()
    fn(shape, out)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_mib": peak_rss_mib(), "base_mib": base,
                      "bytes": _size(out)}))


def check(shape, ours: str) -> None:
    """The archive holds the source pixels (spot check) and validates strictly."""
    import numpy as np

    from napari_ozx import open_ozx

    g = open_ozx(ours)
    src = source(shape)
    z, y = shape[0] // 2, shape[1] // 3
    np.testing.assert_array_equal(g["0"][z, y], np.asarray(src[z, y]))
    validate_strict(ours)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per tool")
    ap.add_argument("--tools", nargs="*", default=TOOLS)
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = SMALL if args.small else FULL
    if args.worker:
        worker(args.worker[0], shape, args.worker[1])
        return 0
    os.makedirs(CACHE, exist_ok=True)
    gib = 2 * shape[0] * shape[1] * shape[2] / 2**30
    print(f"save {shape} uint16 ({gib:.2f} GiB), chunks {CHUNK}^3, shards {SHARD}^3, "
          f"zstd {LEVEL}, {n_levels(shape)} levels, mean downsampling, {os.cpu_count()} cores")
    results = {}
    ours_path = None
    for tool in args.tools:
        ext = ".ozx" if tool != "zarr dir" else ".ome.zarr"
        out = os.path.join(CACHE, "write-" + tool.replace(" ", "-") + ext)
        flags = ["--small"] if args.small else []
        best = best_of(__file__, [*flags, "--worker", tool, out], out, args.repeat, tool)
        if best is not None:
            results[tool] = best
        if tool == "napari-ozx":
            ours_path = out
        else:
            remove(out)
    if ours_path and "napari-ozx" in results:
        check(shape, ours_path)
        os.remove(ours_path)
    print("\n| tool | seconds | MiB/s | peak RSS MiB | output MiB |")
    print("|---|---|---|---|---|")
    for tool, r in results.items():
        print(f"| {tool} | {r['seconds']:.1f} | {gib * 1024 / r['seconds']:.0f} | "
              f"{r['peak_mib']:.0f} | {r['bytes'] / 2**20:.0f} |")
    ours = results.get("napari-ozx")
    if ours:
        print()
        if "ngff-zarr" in results:
            ng = results["ngff-zarr"]
            print(f"speed vs ngff-zarr: {ng['seconds'] / ours['seconds']:.2f}x (goal >= 2x); "
                  f"peak RSS vs ngff-zarr: {ours['peak_mib'] / ng['peak_mib']:.2f}x "
                  "(goal <= 0.5x)")
        if "zarr dir" in results:
            zd = results["zarr dir"]
            print(f"speed vs zarr directory: {zd['seconds'] / ours['seconds']:.2f}x "
                  "(goal >= 0.85x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
