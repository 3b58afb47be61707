"""Read benchmark (issue 2): napari-ozx's store against zarr's ZipStore and a directory.

Each measurement runs in a fresh interpreter (clean memory figures, cold Python caches, warm page
cache).  Prints a table with the ratios the targets are stated in.

    python benchmarks/bench_read.py            # full run (about 10 minutes, 3 GB under /tmp)
    python benchmarks/bench_read.py --small    # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _mem import peak_rss_mib  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0




def _open_store(impl: str, path: str):

    if impl == "ozx":
        from napari_ozx import OzxStore

        return OzxStore(path)
    if impl == "zipstore":
        from zarr.storage import ZipStore

        return ZipStore(path, mode="r")
    from zarr.storage import LocalStore

    return LocalStore(path, read_only=True)


def worker(args) -> dict:
    """One measurement, in this (fresh) process."""
    import warnings

    import zarr
    import zarr.storage  # noqa: F401

    import napari_ozx.read.store  # noqa: F401  (import cost outside the timing)

    warnings.simplefilter("ignore")
    base = _rss_mib()
    if args.worker in ("open", "first"):
        t0 = time.perf_counter()
        store = _open_store(args.impl, args.path)
        g = zarr.open_group(store=store, mode="r")
        attrs = g.attrs.asdict()
        assert "ome" in attrs
        if args.worker == "first":
            a = g["0"]
            row = a[args.row]
            assert int(row[0]) == args.row & 0xFF, row
        dt = time.perf_counter() - t0
        return {"seconds": dt, "extra_rss_mib": peak_rss_mib() - base}
    if args.worker == "dask":
        import dask
        import dask.array as da

        store = _open_store(args.impl, args.path)
        a = zarr.open_array(store=store, mode="r")
        x = da.from_zarr(a, chunks=(1, 512, 512))
        best = None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            with dask.config.set(scheduler="threads", num_workers=args.threads):
                total = x.sum(dtype="uint64").compute()
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        assert total > 0
        return {"seconds": best, "mb_per_s": a.nbytes / best / 1e6}
    raise SystemExit(f"unknown worker {args.worker}")


def run_worker(*argv: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *argv], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(n: int, *argv: str) -> dict:
    runs = [run_worker(*argv) for _ in range(n)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--small", action="store_true", help="small sizes, for a quick look")
    p.add_argument("--worker")
    p.add_argument("--impl")
    p.add_argument("--path")
    p.add_argument("--row", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-dir-entries", action="store_true",
                   help="do not build million-file directories")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import _data

    rows = []
    sizes = [1_000, 10_000] if args.small else [1_000, 10_000, 100_000, 1_000_000]
    print(f"# data in {_data.CACHE}", flush=True)
    for n in sizes:
        z = str(_data.many_entries_archive(n))
        row = n // 2
        res = {}
        for impl in ("ozx", "zipstore"):
            res[impl, "open"] = best_of(3, "open", "--impl", impl, "--path", z)
            res[impl, "first"] = best_of(3, "first", "--impl", impl, "--path", z, "--row", str(row))
        if not args.skip_dir_entries:
            d = str(_data.many_entries_directory(n))
            res["dir", "open"] = best_of(3, "open", "--impl", "dir", "--path", d)
            res["dir", "first"] = best_of(3, "first", "--impl", "dir", "--path", d,
                                          "--row", str(row))
        for what, label, target_t, target_m in (
            ("open", "open + root metadata", 100, 20),
            ("first", "open + one chunk (full index)", 10, 120),
        ):
            o, zs = res["ozx", what], res["zipstore", what]
            dd = res.get(("dir", what))
            rows.append(
                [
                    f"{label}, {n:,} entries",
                    f"{o['seconds'] * 1e3:.1f} ms / {o['extra_rss_mib']:.0f} MiB",
                    f"{zs['seconds'] * 1e3:.1f} ms / {zs['extra_rss_mib']:.0f} MiB",
                    f"{dd['seconds'] * 1e3:.1f} ms" if dd else "-",
                    f"{zs['seconds'] / o['seconds']:.1f}x faster",
                    f">= {target_t}x, <= {target_m} MiB" if n == 1_000_000 else "",
                ]
            )
        print(rows[-2], "\n", rows[-1], flush=True)

    shape = (8, 2048, 2048) if args.small else (32, 2048, 2048)
    for sharded in (True, False):
        d, z = _data.sharded_dataset(sharded, shape)
        for threads in (1, 2):
            r = {
                impl: best_of(1, "dask", "--impl", impl, "--path", path, "--threads", str(threads))
                for impl, path in (("ozx", str(z)), ("zipstore", str(z)), ("dir", str(d)))
            }
            kind = "sharded" if sharded else "unsharded"
            rows.append(
                [
                    f"dask read {kind} {'x'.join(map(str, shape))}, {threads} thread(s)",
                    f"{r['ozx']['mb_per_s']:.0f} MB/s",
                    f"{r['zipstore']['mb_per_s']:.0f} MB/s",
                    f"{r['dir']['mb_per_s']:.0f} MB/s",
                    f"{r['ozx']['mb_per_s'] / r['dir']['mb_per_s']:.2f}x dir, "
                    f"{r['ozx']['mb_per_s'] / r['zipstore']['mb_per_s']:.1f}x ZipStore",
                    (">= 0.9x dir" if sharded else ">= 0.95x dir"),
                ]
            )
            print(rows[-1], flush=True)

    header = ["case", "napari-ozx", "zarr ZipStore", "directory", "ratio", "target"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
