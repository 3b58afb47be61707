"""Pack benchmark (issue 3): ``napari-ozx pack`` against ngff-zarr's zip step
(``ngff_zarr.rfc9_zip.write_store_to_zip``), Info-ZIP ``zip -0 -r`` and the stdlib ``zipfile``.

The input is a sharded OME-Zarr 0.5 directory made with zarr under $OZX_BENCH_DIR (default
/tmp/napari-ozx-bench): a uint16 volume, shards of 8x2048x2048 holding 1x512x512 chunks.  Each
tool runs in a fresh process on a warm page cache and must leave a durable archive (every
worker fsyncs its output; ours does so itself), so all pay the same disk cost.  Peak RSS is the
process high-water mark; for the Python workers also the growth beyond the interpreter with its
imports (measured just before packing starts).

    python benchmarks/bench_pack.py            # ~3 GiB directory
    python benchmarks/bench_pack.py --small    # ~256 MiB, quick
    python benchmarks/bench_pack.py --repeat 3 # best of 3 runs per tool
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _runs import fsync_file  # noqa: E402

CACHE = os.environ.get("OZX_BENCH_DIR", "/tmp/napari-ozx-bench")

FULL_SHAPE = (48, 4096, 8192)  # 3 GiB of uint16
SMALL_SHAPE = (32, 2048, 2048)  # 256 MiB
TOOLS = ["napari-ozx", "ngff-zarr", "zip -0 -r", "zipfile"]


def _status(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def make_directory(shape) -> str:
    """A sharded OME-Zarr 0.5 image directory (uncompressed shards, so GBs are cheap to make)."""
    import numpy as np
    import zarr

    d = os.path.join(CACHE, "pack-" + "x".join(map(str, shape)) + ".ome.zarr")
    if os.path.exists(os.path.join(d, ".done")):
        return d
    shutil.rmtree(d, ignore_errors=True)
    root = zarr.open_group(d, mode="w", zarr_format=3)
    root.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{
            "axes": [{"name": n, "type": "space"} for n in "zyx"],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
        }],
    }
    arr = root.create_array("0", shape=shape, chunks=(1, 512, 512), shards=(8, 2048, 2048),
                            dtype="uint16", compressors=None)
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 4096, size=(1, 2048, 2048), dtype=np.uint16)
    for z in range(0, shape[0], 8):
        for y in range(0, shape[1], 2048):
            for x in range(0, shape[2], 2048):
                block = np.repeat(tile, 8, axis=0) + np.uint16((z + y // 2048 + x // 2048) % 7)
                arr[z : z + 8, y : y + 2048, x : x + 2048] = block
    open(os.path.join(d, ".done"), "w").close()
    return d


def _data_files(d: str) -> list[tuple[str, str]]:
    out = []
    for r, _, fs in os.walk(d):
        for f in fs:
            if f == ".done":
                continue
            p = os.path.join(r, f)
            out.append((os.path.relpath(p, d).replace(os.sep, "/"), p))
    out.sort(key=lambda t: (not t[0].endswith("zarr.json"), t[0].count("/"), t[0]))
    return out


def worker(tool: str, src: str, dest: str) -> dict:
    """Pack in this (fresh) process; report time and memory."""
    if tool == "napari-ozx":
        from napari_ozx.tools.pack import pack
    elif tool == "ngff-zarr":
        from ngff_zarr.rfc9_zip import write_store_to_zip
    else:
        import zipfile
    base = _status("VmRSS")
    t0 = time.perf_counter()
    if tool == "napari-ozx":
        pack(src, dest)  # fsyncs and renames itself
    elif tool == "ngff-zarr":
        write_store_to_zip(src, dest, version="0.5")
        fsync_file(dest)
    else:
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, path in _data_files(src):
                zf.write(path, name)
        fsync_file(dest)
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "base_mib": base, "peak_mib": _status("VmHWM")}


def run(tool: str, src: str, dest: str) -> dict:
    if os.path.exists(dest):
        os.remove(dest)
    if tool == "zip -0 -r":
        # Metadata first, breadth-first, as RFC-9 wants (zip keeps the order it is given).
        # A small Python parent runs zip and reports zip's own high-water mark.
        files = "\n".join(n for n, _ in _data_files(src))
        wrapper = (
            "import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "subprocess.run(['zip', '-0', '-q', '-X', sys.argv[1], '-@'], check=True,\n"
            "               input=sys.stdin.buffer.read())\n"
            "fd = __import__('os').open(sys.argv[1], 0); __import__('os').fsync(fd)\n"
            "print(json.dumps({'seconds': time.perf_counter() - t, 'base_mib': 0.0,\n"
            "  'peak_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
        )
        out = subprocess.run([sys.executable, "-c", wrapper, dest], cwd=src, check=True,
                             input=files.encode(), capture_output=True)
        return json.loads(out.stdout.decode().strip().splitlines()[-1])
    out = subprocess.run([sys.executable, __file__, "--worker", tool, src, dest],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _warm(src: str) -> int:
    total = 0
    for _, p in _data_files(src):
        with open(p, "rb") as f:
            while chunk := f.read(16 << 20):
                total += len(chunk)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "SRC", "DEST"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    os.makedirs(CACHE, exist_ok=True)
    shape = SMALL_SHAPE if args.small else FULL_SHAPE
    src = make_directory(shape)
    size = _warm(src)
    print(f"input: {src}: {size / 2**30:.2f} GiB in {len(_data_files(src))} files "
          f"(page cache warm), best of {args.repeat}")
    results: dict[str, dict] = {}
    dests = {t: os.path.join(CACHE, "pack-out-" + t.split()[0].replace("-", "") + ".ozx")
             for t in TOOLS}
    try:
        # Round-robin over the tools, with the disk's dirty pages flushed before each run, so
        # no tool pays for another's write-back.
        for _ in range(args.repeat):
            for tool in TOOLS:
                os.sync()
                r = run(tool, src, dests[tool])
                r["bytes"] = os.path.getsize(dests[tool])
                os.remove(dests[tool])
                if tool not in results or r["seconds"] < results[tool]["seconds"]:
                    results[tool] = r
    finally:
        for p in dests.values():
            if os.path.exists(p):
                os.remove(p)
    ours = results["napari-ozx"]
    print()
    print(f"| {'tool':<12} | {'MB/s':>7} | {'seconds':>7} | {'peak RSS MiB':>12} | "
          f"{'RSS growth MiB':>14} | {'ours/them speed':>15} |")
    print("|" + "|".join("-" * (w + 2) for w in (12, 7, 7, 12, 14, 15)) + "|")
    for tool, r in results.items():
        mbs = size / r["seconds"] / 1e6
        growth = r["peak_mib"] - r["base_mib"] if r["base_mib"] else float("nan")
        ratio = r["seconds"] / ours["seconds"]
        print(f"| {tool:<12} | {mbs:>7.0f} | {r['seconds']:>7.2f} | {r['peak_mib']:>12.1f} | "
              f"{growth:>14.1f} | {ratio:>15.2f} |")
    best_peer = min(r["seconds"] for t, r in results.items() if t != "napari-ozx")
    print()
    print(f"napari-ozx throughput / best peer: {best_peer / ours['seconds']:.2f}x "
          f"(target >= 1); RSS growth beyond the interpreter: "
          f"{ours['peak_mib'] - ours['base_mib']:.1f} MiB (target <= 64)")


if __name__ == "__main__":
    main()
