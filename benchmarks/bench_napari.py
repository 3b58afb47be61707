"""napari benchmark (issue 4): time from ``viewer.open`` to the first rendered frame.

Same data, same run: our reader on a large sharded ``.ozx`` against napari-ome-zarr on the same
OME-Zarr directory unzipped.  Every measurement runs in a fresh interpreter under one Xvfb server
(real OpenGL rendering through Mesa), warm page cache, in alternating order; the table shows
medians and the ratio ozx / directory (target <= 1.1).  Two views: the whole image as napari
first shows it (a coarse level), and zoomed in on the centre at full resolution (level 0, where
the inner chunks of the shards are read).

Also: the reader returning layer data for a 1,000,000-entry jsonFirst archive (target < 100 ms).

    python benchmarks/bench_napari.py            # 2 x 32768 x 32768 uint16 (a ~4 GB archive)
    python benchmarks/bench_napari.py --small    # 2 x 4096 x 4096
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CHUNK = 512
SHARD = 4096


# ----------------------------------------------------------------------------- data


def _pattern(level: int, y0: int, x0: int, h: int, w: int, channel: int, seed: int):
    """Rings and noise: the same picture at every level (coordinates scaled by 2**level)."""
    import numpy as np

    f = 2**level
    yy = (np.arange(y0, y0 + h, dtype=np.float32) * f)[:, None]
    xx = (np.arange(x0, x0 + w, dtype=np.float32) * f)[None, :]
    period = 900.0 if channel == 0 else 1400.0
    base = 1500 + 1200 * np.sin(np.hypot(yy - 9000, xx - 11000) / period * 6.283)
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 2000, size=(h, w), dtype=np.uint16)  # ~11 bits: hard to compress
    return (base.astype(np.uint16) + noise)[None]


def build_dataset(size: int) -> tuple[Path, Path]:
    """A sharded OME-Zarr 0.5 image (2 channels, levels down to <= 1024) and its ``.ozx``."""
    import zarr
    from zarr.codecs import BloscCodec

    from _data import CACHE
    from napari_ozx.tools.pack import pack

    name = f"napari-2x{size}x{size}"
    directory = CACHE / f"{name}.ome.zarr"
    archive = CACHE / f"{name}.ozx"
    if (directory / ".done").exists() and archive.exists():
        return directory, archive
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    if archive.exists():
        archive.unlink()
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    g = zarr.open_group(str(directory), mode="w", zarr_format=3)
    levels, shape, level = [], size, 0
    while True:
        levels.append(shape)
        if shape <= 1024:
            break
        shape //= 2
    datasets = []
    for level, n in enumerate(levels):
        shard = min(SHARD, n)
        arr = g.create_array(
            str(level), shape=(2, n, n), dtype="uint16", chunks=(1, CHUNK, CHUNK),
            shards=(1, shard, shard), dimension_names=["c", "y", "x"],
            compressors=BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),
        )
        for c in range(2):
            for y0 in range(0, n, shard):
                for x0 in range(0, n, shard):
                    h, w = min(shard, n - y0), min(shard, n - x0)
                    block = _pattern(level, y0, x0, h, w, c, seed=level * 1000 + c * 100 + y0 + x0)
                    arr[c : c + 1, y0 : y0 + h, x0 : x0 + w] = block
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 0.5 * 2**level, 0.5 * 2**level]}]})
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"name": "bench", "datasets": datasets, "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]}],
        "omero": {"channels": [
            {"label": "a", "color": "FF00FF", "window": {"start": 0, "end": 5000, "min": 0,
                                                         "max": 65535}, "active": True},
            {"label": "b", "color": "00FF00", "window": {"start": 0, "end": 5000, "min": 0,
                                                         "max": 65535}, "active": True}]},
    }
    t1 = time.perf_counter()
    pack(directory, archive, overwrite=True)
    t2 = time.perf_counter()
    (directory / ".done").write_text("")
    print(f"# built {directory} in {t1 - t0:.0f} s, packed {archive} "
          f"({archive.stat().st_size / 1e9:.2f} GB) in {t2 - t1:.0f} s", flush=True)
    return directory, archive


# ----------------------------------------------------------------------------- one measurement


def _child(args) -> None:
    """In a fresh interpreter: open with one plugin, render, print JSON timings."""
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 900)
    for _ in range(3):
        QApplication.processEvents()
    if args.warm:
        # warm: the plugin imported and one small dataset shown first, as in a session that
        # has opened something before (imports, pint's unit registry, dask's scheduler, GL)
        viewer.open(args.warm, plugin=args.plugin)
        viewer.screenshot(canvas_only=True, flash=False)
        viewer.layers.clear()
        QApplication.processEvents()
    t0 = time.perf_counter()
    viewer.open(args.path, plugin=args.plugin)
    t1 = time.perf_counter()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    t2 = time.perf_counter()
    out = {"open": t1 - t0, "first_frame": t2 - t0, "layers": len(viewer.layers),
           "levels": [int(layer.data_level) for layer in viewer.layers],
           "mean": float(np.asarray(shot)[..., :3].mean())}
    # zoom in on the centre at full resolution: napari then reads level 0 tiles
    cy, cx = (np.asarray(viewer.layers[0].extent.world[1]) / 2)[-2:]
    viewer.camera.center = (cy, cx)
    viewer.camera.zoom = 4.0 / viewer.layers[0].scale[-1]
    t3 = time.perf_counter()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    t4 = time.perf_counter()
    out["zoom_frame"] = t4 - t3
    out["zoom_levels"] = [int(layer.data_level) for layer in viewer.layers]
    out["zoom_mean"] = float(np.asarray(shot)[..., :3].mean())
    print("RESULT " + json.dumps(out), flush=True)
    viewer.close()


def _reader_child(args) -> None:
    """In a fresh interpreter: our getter + reader on one archive, timed."""
    import napari_ozx._reader  # noqa: F401  (napari imports the plugin before it reads)
    import napari_ozx.ome  # noqa: F401
    from napari_ozx._reader import napari_get_reader

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        reader = napari_get_reader(args.path)
        layers = reader(args.path)
        times.append(time.perf_counter() - t0)
    data = layers[0][0]
    print("RESULT " + json.dumps({"first": times[0], "best": min(times),
                                  "shape": list(data.shape), "n_layers": len(layers)}),
          flush=True)


def _run_child(argv: list[str], env: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                         env=env, timeout=900)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({res.returncode}):\n{res.stdout[-2000:]}\n"
                       f"{res.stderr[-4000:]}")


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="a quick run on small data")
    ap.add_argument("--repeat", type=int, default=None, help="measurements per reader")
    ap.add_argument("--child", choices=["view", "reader"], help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--plugin", help=argparse.SUPPRESS)
    ap.add_argument("--warm", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "view":
        _child(args)
        return 0
    if args.child == "reader":
        _reader_child(args)
        return 0

    from _data import many_entries_archive
    from napari_ozx._demo import virtual_display

    size = 4096 if args.small else 32768
    repeat = args.repeat or (3 if args.small else 5)
    directory, archive = build_dataset(size)
    warm_dir, warm_ozx = build_dataset(1024)
    big = many_entries_archive(10_000 if args.small else 1_000_000)

    rows = []
    results: dict[str, list[dict]] = {"ozx": [], "dir": [], "ozx-warm": [], "dir-warm": []}
    with virtual_display("1600x1200x24"):
        env = dict(os.environ)
        for i in range(repeat):
            order = [("ozx", str(archive), "napari-ozx", str(warm_ozx)),
                     ("dir", str(directory), "napari-ome-zarr", str(warm_dir))]
            for key, path, plugin, warm in order if i % 2 == 0 else order[::-1]:
                argv = ["--child", "view", "--path", path, "--plugin", plugin]
                results[key].append(_run_child(argv, env))
                results[key + "-warm"].append(_run_child([*argv, "--warm", warm], env))
    for suffix, when in (("", "cold process"), ("-warm", "warm process")):
        for metric, label in (("first_frame", "open -> first frame"),
                              ("zoom_frame", "zoom to centre (level 0) -> frame")):
            ozx = statistics.median(r[metric] for r in results["ozx" + suffix])
            d = statistics.median(r[metric] for r in results["dir" + suffix])
            rows.append((f"{label}, {when}", ozx, d, ozx / d))
    r0, d0 = results["ozx"][0], results["dir"][0]
    reader = _run_child(["--child", "reader", "--path", str(big), "--repeat", "5"],
                        dict(os.environ))

    size_gb = archive.stat().st_size / 1e9
    print(f"\nnapari: {size}x{size}x2 uint16 sharded (chunks {CHUNK}, shards {SHARD}), "
          f"archive {size_gb:.2f} GB; median of {repeat} fresh processes each, Xvfb + Mesa")
    print("(cold: a fresh interpreter, the plugin's first import and napari's one-time set-up "
          "included; warm: a small dataset opened with the same plugin first)")
    print(f"{'measure':48s} {'napari-ozx (.ozx)':>18s} {'napari-ome-zarr (dir)':>22s} "
          f"{'ratio':>7s} {'target':>7s}")
    for label, ozx, d, ratio in rows:
        print(f"{label:48s} {ozx * 1e3:15.0f} ms {d * 1e3:19.0f} ms {ratio:7.2f} {'<= 1.1':>7s}")
    print(f"(levels shown: ozx {r0['levels']} / dir {d0['levels']}; zoomed: ozx "
          f"{r0['zoom_levels']} / dir {d0['zoom_levels']}; mean pixel ozx {r0['mean']:.1f} / "
          f"dir {d0['mean']:.1f})")
    n = int(big.stem.split("-")[-1])
    print(f"\nreader -> layer data, {n:,}-entry jsonFirst archive ({big.stat().st_size / 1e6:.0f} "
          f"MB): first call {reader['first'] * 1e3:.0f} ms, best of 5 "
          f"{reader['best'] * 1e3:.0f} ms (target < 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
