"""Cost of the per-chunk checksum (issue 13): the save benchmark's volume saved with
``checksum=True`` (the default: zstd frame content checksum in every inner chunk) and with
``checksum=False``, then level 0 of each archive read back whole through napari-ozx's store with
dask, one task per inner chunk (64^3), on 1 and 2 threads.

Saves alternate (on, off, on, off...) in fresh processes, best of ``--repeat``; reads
alternate inside one process (after a first read of each, which warms the page cache), best
of ``2 * --repeat``.
Prints the ratios on/off of wall time and of CPU time (user + system, all threads: the work
done, less sensitive than wall time to other load on a shared machine); target: at most 1.03.

    python benchmarks/bench_checksum.py            # 256 MiB: (64, 1024, 2048)
    python benchmarks/bench_checksum.py --full     # 4 GiB: (256, 2048, 4096)
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

from _runs import fsync_file  # noqa: E402
from bench_write import (  # noqa: E402
    CACHE,
    CHUNK,
    FULL,
    LEVEL,
    SHARD,
    SMALL,
    source,
)


def write_worker(shape, out, checksum: bool) -> dict:
    import dask

    from napari_ozx import write_ozx

    dask.config.set(scheduler="threads")
    t, c = time.perf_counter(), time.process_time()
    write_ozx(out, source(shape), axes="zyx", chunks=(CHUNK,) * 3, shards=(SHARD,) * 3,
              codec="zstd", level=LEVEL, image_method="mean", checksum=checksum)
    fsync_file(out)
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
            "bytes": os.path.getsize(out)}


def read_worker(path, threads: int) -> dict:
    import dask
    import dask.array as da
    import zarr

    from napari_ozx import OzxStore

    a = zarr.open_group(store=OzxStore(path), mode="r")["0"]
    x = da.from_zarr(a, chunks=a.chunks)
    t, c = time.perf_counter(), time.process_time()
    with dask.config.set(scheduler="threads", num_workers=threads):
        total = int(x.sum(dtype="uint64").compute())
    assert total > 0
    return {"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
            "mb_per_s": a.nbytes / 1e6}


def read_pair_worker(on: str, off: str, threads: int, rounds: int) -> dict:
    """Both archives read in this one process, alternating, ``rounds`` times each: the
    fine-grained alternation keeps other load on the machine from favouring either."""
    out = {"on": [], "off": []}
    for _ in range(rounds):
        for m, p in (("on", on), ("off", off)):
            out[m].append(read_worker(p, threads))
    return out


def codec_costs(rounds: int = 7) -> dict:
    """ms per 64^3 uint16 chunk of the benchmark's data: zstd 3 encode/decode with and without
    the frame checksum, and with zarr's crc32c codec after it (the alternative), alternating."""
    import numpy as np
    from numcodecs import CRC32C, Zstd

    a = np.ascontiguousarray(source((CHUNK, SHARD, SHARD))[:CHUNK, :CHUNK,
                                                                      :CHUNK].compute())
    plain, checked, crc = Zstd(level=LEVEL), Zstd(level=LEVEL, checksum=True), CRC32C()
    e0, e1 = plain.encode(a), checked.encode(a)
    e2 = crc.encode(e0)
    cases = {"off": (lambda: plain.encode(a), lambda: plain.decode(e0)),
             "zstd checksum": (lambda: checked.encode(a), lambda: checked.decode(e1)),
             "crc32c codec": (lambda: crc.encode(plain.encode(a)),
                              lambda: plain.decode(crc.decode(e2)))}
    best = {k: [float("inf"), float("inf")] for k in cases}
    for _ in range(rounds):
        for k, fns in cases.items():
            for j, fn in enumerate(fns):
                n = 20 if j == 0 else 200
                t = time.process_time()
                for _ in range(n):
                    fn()
                best[k][j] = min(best[k][j], (time.process_time() - t) / n * 1e3)
    return best


def _run(*argv) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv],
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"worker {argv} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write-worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--read-worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--read-pair", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = FULL if args.full else SMALL
    if args.write_worker:
        print(json.dumps(write_worker(shape, args.write_worker[0],
                                      args.write_worker[1] == "on")))
        return 0
    if args.read_pair:
        on, off, threads, rounds = args.read_pair
        print(json.dumps(read_pair_worker(on, off, int(threads), int(rounds))))
        return 0
    if args.read_worker:
        print(json.dumps(read_worker(args.read_worker[0], int(args.read_worker[1]))))
        return 0
    os.makedirs(CACHE, exist_ok=True)
    size = (FULL if args.full else SMALL)
    flag = ["--full"] if args.full else []
    print(f"save/read {size} uint16, chunks {CHUNK}^3, shards {SHARD}^3, zstd {LEVEL}, "
          f"{os.cpu_count()} cores, best of {args.repeat}, on/off alternating")
    paths = {m: os.path.join(CACHE, f"checksum-{m}.ozx") for m in ("on", "off")}
    write = {m: [] for m in paths}
    for _ in range(args.repeat):
        for m, p in paths.items():
            if os.path.exists(p):
                os.remove(p)
            write[m].append(_run(*flag, "--write-worker", p, m))
    read = {}
    for threads in (1, 2):
        pair = _run(*flag, "--read-pair", paths["on"], paths["off"], str(threads),
                    str(2 * args.repeat))
        for m in paths:
            read[m, threads] = pair[m]
    print("\n| case | checksum on | checksum off | on/off wall | on/off CPU |")
    print("|---|---|---|---|---|")

    def row(label, on_runs, off_runs, mb=None):
        on = min(r["seconds"] for r in on_runs)
        off = min(r["seconds"] for r in off_runs)
        con = min(r["cpu"] for r in on_runs)
        coff = min(r["cpu"] for r in off_runs)
        rate = (f" ({mb / on:.0f} MB/s)", f" ({mb / off:.0f} MB/s)") if mb else ("", "")
        print(f"| {label} | {on:.2f} s{rate[0]}, CPU {con:.2f} s | {off:.2f} s{rate[1]}, "
              f"CPU {coff:.2f} s | {on / off:.3f} | {con / coff:.3f} |")

    row("save", write["on"], write["off"])
    b_on, b_off = write["on"][-1]["bytes"], write["off"][-1]["bytes"]
    print(f"| archive size | {b_on / 2**20:.1f} MiB | {b_off / 2**20:.1f} MiB | "
          f"{b_on / b_off:.4f} | |")
    for threads in (1, 2):
        row(f"read level 0, {threads} thread(s)", read["on", threads], read["off", threads],
            read["on", threads][0]["mb_per_s"])
    costs = codec_costs()
    print("\n| per 64^3 uint16 chunk (CPU) | encode ms | decode ms | encode vs off | "
          "decode vs off |")
    print("|---|---|---|---|---|")
    for k, (enc, dec) in costs.items():
        print(f"| {k} | {enc:.3f} | {dec:.4f} | {enc / costs['off'][0]:.3f} | "
              f"{dec / costs['off'][1]:.3f} |")
    n_chunks = 1
    for s_, c in zip(shape, (CHUNK,) * 3, strict=True):
        n_chunks *= -(-s_ // c)
    extra = (costs["zstd checksum"][1] - costs["off"][1]) * n_chunks / 1e3
    cpu_off = min(r["cpu"] for r in read["off", 1])
    print(f"\nchecksum's decode cost x {n_chunks} chunks of level 0 = {extra:.3f} s CPU, "
          f"{extra / cpu_off * 100:.1f}% of the 1-thread read's CPU ({cpu_off:.2f} s)")
    for p in paths.values():
        os.remove(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
