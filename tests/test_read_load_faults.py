"""Load and faults (issue 13), bounded in time, on 127.0.0.1 only.

* Load: 8 threads here and 2 more processes read random inner chunks of three archives (a local
  sharded one, a local one of 1,000,000 entries, the sharded one over HTTP) for
  ``OZX_LOAD_SECONDS`` (30 s): every chunk equal to the same chunk read from a directory (the
  1M-entry archive: to the rows its writer wrote), no error, memory flat (RSS growth under
  50 MiB after a warm-up).
* Faults: a full read of a 200 MB archive from a server that resets ~10% of the connections
  mid-body, answers 5% with 503, cuts 5% of the bodies short and answers 2% after the client's
  timeout completes with identical bytes within a stated retry budget; a server that always
  fails (or never answers) gives a RemoteError naming the URL within a bounded time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr

from archives import many_row
from load_loop import read_loop
from napari_ozx import open_ozx, write_ozx
from napari_ozx.zip.remote import RemoteError
from servers import RangeServer

HERE = Path(__file__).parent
SECONDS = float(os.environ.get("OZX_LOAD_SECONDS", "30"))
WARM_UP = min(5.0, SECONDS / 6)
SHAPE, CHUNKS, SHARDS = (16, 1024, 1024), (1, 128, 128), (4, 512, 512)

CHILD = textwrap.dedent('''
    import json, sys, threading
    import psutil, zarr
    sys.path.insert(0, TESTS)
    from archives import many_row
    from load_loop import read_loop
    from napari_ozx import open_ozx

    sharded_path, many_path, url, directory, seconds, seed = sys.argv[1:7]
    arrays = (open_ozx(sharded_path)["0"], open_ozx(many_path)["a"],
              open_ozx(url, storage_options={"retries": 4, "backoff": 0.01})["0"])
    reference = zarr.open_group(directory, mode="r")["0"]
    proc = psutil.Process()
    warm = read_loop(arrays, reference, many_row, WARM, int(seed))
    base = proc.memory_info().rss
    res = read_loop(arrays, reference, many_row, float(seconds) - WARM, int(seed) + 1)
    res["rss_growth_mib"] = (proc.memory_info().rss - base) / 2**20
    res["reads"] += warm["reads"]
    res["errors"] += warm["errors"]
    res["mismatches"] += warm["mismatches"]
    print(json.dumps(res))
''')


@pytest.fixture(scope="module")
def load_archives(tmp_path_factory, million_ozx):
    d = tmp_path_factory.mktemp("load")
    rng = np.random.default_rng(13)
    zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    pixels = (1000 + 7 * zz + 3 * yy + xx + rng.integers(0, 64, SHAPE)).astype("uint16")
    sharded = d / "sharded.ozx"
    write_ozx(sharded, pixels, axes="zyx", chunks=CHUNKS, shards=SHARDS, pyramid_levels=1)
    directory = d / "sharded.zarr"
    with zipfile.ZipFile(sharded) as z:  # the same entries, as files (the stdlib unzips)
        z.extractall(directory)
    return sharded, million_ozx, directory, pixels


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_load_threads_and_processes_read_exact_chunks_with_flat_memory(load_archives):
    sharded, many, directory, pixels = load_archives
    reference = zarr.open_group(str(directory), mode="r")["0"]
    np.testing.assert_array_equal(reference[...], pixels)  # the directory holds the pixels
    with RangeServer() as srv:
        url = srv.put("/sharded.ozx", sharded.read_bytes())
        child = f"TESTS = {str(HERE)!r}\nWARM = {WARM_UP!r}\n" + CHILD
        procs = [subprocess.Popen([sys.executable, "-c", child, str(sharded), str(many), url,
                                   str(directory), str(SECONDS), str(100 + k)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in range(2)]
        arrays = (open_ozx(sharded)["0"], open_ozx(many)["a"],
                  open_ozx(url, storage_options={"retries": 4, "backoff": 0.01})["0"])
        proc = psutil.Process()
        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(lambda k: read_loop(arrays, reference, many_row, WARM_UP, k),
                                 range(8)))
            base = proc.memory_info().rss
            t0 = time.monotonic()
            results = list(pool.map(
                lambda k: read_loop(arrays, reference, many_row, SECONDS - WARM_UP, 10 + k),
                range(8)))
            elapsed = time.monotonic() + WARM_UP - t0
        growth = (proc.memory_info().rss - base) / 2**20
        children = []
        for p in procs:
            out, err = p.communicate(timeout=SECONDS + 120)
            assert p.returncode == 0, err[-3000:]
            children.append(json.loads(out.strip().splitlines()[-1]))
        requests = srv.stats.requests
    everything = warm + results + children
    reads = sum(r["reads"] for r in everything)
    errors = [e for r in everything for e in r["errors"]]
    mismatches = [m for r in everything for m in r["mismatches"]]
    print(f"\nload: {reads} chunk reads in {elapsed:.1f} s by 8 threads + 2 processes "
          f"({reads / elapsed:.0f}/s, {sum(r['bytes'] for r in everything) / 2**20:.0f} MiB), "
          f"{requests} HTTP requests, errors {len(errors)}, mismatches {len(mismatches)}, "
          f"RSS growth after warm-up: here {growth:.1f} MiB, children "
          f"{[round(c['rss_growth_mib'], 1) for c in children]} MiB")
    assert errors == []
    assert mismatches == []
    assert all(r["reads"] > 0 for r in results + children) and len(results) == 8
    assert reads > 1000
    assert growth < 50
    assert all(c["rss_growth_mib"] < 50 for c in children) and len(children) == 2


# ------------------------------------------------------------------------------------- faults

FAULTS = dict(p_reset=0.10, p_unavailable=0.05, p_truncate=0.05, p_slow=0.02, slow_seconds=2.0,
              seed=9)
#: the retry budget: each request may be retried this often; timeout per attempt
BUDGET = {"retries": 8, "backoff": 0.01, "timeout": 1.0}


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    path = d / "big.ozx"
    noise = np.random.default_rng(3).integers(0, 65535, (100, 1000, 1000), dtype=np.uint16)
    write_ozx(path, noise, axes="zyx", chunks=(1, 500, 500), shards=(2, 1000, 1000),
              codec="none", pyramid_levels=1)
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_full_read_through_a_faulty_server_is_exact(big_archive):
    from napari_ozx.zip.remote import open_remote_archive

    data = big_archive.read_bytes()
    assert len(data) > 200e6
    with zipfile.ZipFile(big_archive) as z:
        local = {i.filename: i for i in z.infolist()}
    with RangeServer(**FAULTS) as srv:
        url = srv.put("/big.ozx", data)
        t0 = time.monotonic()
        archive = open_remote_archive(url, BUDGET)
        names = list(archive.names())
        assert sorted(names) == sorted(local)

        def check(name):
            got = archive.read(name)
            info = local[name]
            with zipfile.ZipFile(big_archive) as z:
                return got == z.read(info), len(got)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(check, names))
        elapsed = time.monotonic() - t0
        retried = archive.source.retried
        requests, faults = srv.stats.requests, dict(srv.stats.faults)
    total = sum(n for _, n in results)
    print(f"\nfaults: {total / 1e6:.0f} MB in {len(names)} entries read in {elapsed:.1f} s "
          f"through {requests} requests; injected {faults}; {retried} retries "
          f"(budget {BUDGET['retries']} per request, {BUDGET['timeout']} s timeout)")
    assert all(ok for ok, _ in results) and len(results) == len(local)
    assert total > 200e6
    assert sum(faults.values()) >= 0.1 * requests  # the faults really happened
    assert retried >= sum(faults.values()) * 0.9
    assert retried <= 0.6 * requests  # retries in proportion to the faults, no storm
    assert elapsed < 120


@pytest.mark.parametrize("behaviour", [dict(status=503), dict(p_slow=1.0, slow_seconds=30)],
                         ids=["always-503", "never-answers"])
def test_a_server_that_always_fails_is_a_remote_error_naming_the_url_in_bounded_time(
        tmp_path, behaviour):
    small = tmp_path / "small.ozx"
    write_ozx(small, np.ones((32, 32), dtype="uint16"), axes="yx")
    with RangeServer() as srv:
        url = srv.put("/small.ozx", small.read_bytes())
        srv.set(**behaviour)
        t0 = time.monotonic()
        with pytest.raises(RemoteError) as info:
            open_ozx(url, storage_options={"retries": 2, "backoff": 0.01, "timeout": 0.5})
        elapsed = time.monotonic() - t0
    print(f"\n{behaviour}: {type(info.value).__name__} after {elapsed:.2f} s: {info.value}")
    assert url in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)
    assert elapsed < 10, elapsed


def test_the_fault_server_injects_what_it_says(tmp_path):
    """The faults are real: a plain client sees resets, 503s, short bodies and slow answers."""
    import http.client

    with RangeServer(p_reset=0.25, p_unavailable=0.25, p_truncate=0.25, p_slow=0.25,
                     slow_seconds=0.5, seed=1) as srv:
        srv.put("/x", bytes(range(256)) * 4096)
        seen = {"reset": 0, "503": 0, "short": 0, "slow": 0}
        for _ in range(40):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            t = time.monotonic()
            try:
                conn.request("GET", "/x")
                r = conn.getresponse()
                if r.status == 503:
                    seen["503"] += 1
                    continue
                body = r.read()
                if len(body) < 1 << 20:
                    seen["short"] += 1
                elif time.monotonic() - t >= 0.5:
                    seen["slow"] += 1
            except http.client.IncompleteRead:
                seen["short"] += 1
            except (ConnectionResetError, http.client.RemoteDisconnected):
                seen["reset"] += 1
            finally:
                conn.close()
        faults = dict(srv.stats.faults)
    assert sum(faults.values()) == 40  # the four probabilities add up to 1
    assert seen["503"] == faults.get("unavailable", 0) > 0
    assert seen["slow"] == faults.get("slow", 0) > 0
    assert seen["reset"] + seen["short"] == faults.get("reset", 0) + faults.get("truncate", 0)
    assert faults.get("reset", 0) > 0 and faults.get("truncate", 0) > 0
