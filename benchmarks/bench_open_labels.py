"""What opening a label image for painting costs (issue 11): napari's reader on an archive with
an image and a label image, with the label image loaded into memory (the default, up to the
paint budget) against kept lazy (``NAPARI_OZX_PAINT_BUDGET_MB=0``: a read-only pyramid).

Sizes: label images of 16, 64 and 256 MiB (uint16, 64^3 chunks in 256^3 shards, zstd 3,
written by napari-ozx), each beside an image of the same shape.  Each open is a fresh process
(warm page cache: the archive is read once before), best of ``--repeat``.

    python benchmarks/bench_open_labels.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_write import CACHE

SHAPES = {16: (64, 256, 512), 64: (64, 512, 1024), 256: (128, 1024, 1024)}


def _archive(mib: int) -> str:
    import numpy as np

    from napari_ozx import write_ozx

    path = os.path.join(CACHE, f"open-labels-{mib}.ozx")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        shape = SHAPES[mib]
        rng = np.random.default_rng(0)
        img = rng.integers(0, 1000, size=shape, dtype=np.uint16)
        lab = np.zeros(shape, np.uint16)
        lab[:, ::64, ::64] = 1
        lab[:, 10:200, 10:300] = 7
        write_ozx(path + ".part.ozx", img, labels={"cells": lab}, axes="zyx",
                  contrast_limits=(0, 999))
        os.replace(path + ".part.ozx", path)
    return path


def worker(path: str) -> None:
    t = time.perf_counter()
    from napari_ozx._reader import napari_get_reader

    layers = napari_get_reader(path)(path)
    data = [d for d, _, kind in layers if kind == "labels"][0]
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "in_memory": type(data).__name__ == "ndarray"}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    print("| label image | open, lazy pyramid (s) | open, loaded to paint (s) | added (s) |")
    print("|---|---|---|---|")
    for mib in SHAPES:
        path = _archive(mib)
        with open(path, "rb") as f:  # warm the page cache
            while f.read(1 << 24):
                pass
        best = {}
        for mode, budget in (("lazy", "0"), ("loaded", "")):
            env = dict(os.environ, NAPARI_OZX_PAINT_BUDGET_MB=budget)
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                                      path], capture_output=True, text=True, env=env, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["in_memory"] == (mode == "loaded"), r
                runs.append(r["seconds"])
            best[mode] = min(runs)
        print(f"| {mib} MiB {SHAPES[mib]} | {best['lazy']:.2f} | {best['loaded']:.2f} | "
              f"{best['loaded'] - best['lazy']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
