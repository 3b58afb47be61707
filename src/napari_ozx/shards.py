"""One dask task per shard, and the loop that feeds their results to the archive writer.

A task computes a shard's pixels and encodes them with zarr into a throw-away in-memory store
(:func:`encode_shard`), so it can run anywhere (threads, processes, ``dask.distributed``
workers); only the encoded bytes travel back.  :func:`stream` keeps a window of tasks in flight
and hands each result over in the calling thread, which bounds memory by the window whatever
the image size.  :func:`read_shard` reads a shard back from the archive being written (by path
and byte span), so the next pyramid level is computed from this one.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable

import dask
import dask.threaded
import numpy as np

from .errors import OzxError

__all__ = ["WriteCancelled", "encode_shard", "read_shard", "regions", "shard_key", "n_shards",
           "stream"]


class WriteCancelled(OzxError):
    """The write was cancelled; the destination was left as it was."""


def encode_shard(block: np.ndarray, meta_json: bytes, region: tuple, unique: bool):
    """Encode one shard with zarr (in memory): ``([(key, bytes)], unique values or None)``."""
    import zarr
    from zarr.core.buffer import cpu
    from zarr.storage import MemoryStore

    d = {"zarr.json": cpu.Buffer.from_bytes(meta_json)}
    arr = zarr.open_array(MemoryStore(d), mode="r+", zarr_format=3)
    block = np.asarray(block)
    arr[tuple(slice(a, b) for a, b in region)] = block
    # the encoded shard as a view of zarr's buffer (no copy of a whole shard)
    out = [(k, v.as_numpy_array()) for k, v in d.items() if k != "zarr.json"]
    values = np.unique(block) if unique else None
    return out, values


def read_shard(meta_json: bytes, key: str, path: str, span, region, block_info=None):
    """One shard of a level as written, read back from the (temporary) archive file."""
    import zarr
    from zarr.core.buffer import cpu
    from zarr.storage import MemoryStore

    d = {"zarr.json": cpu.Buffer.from_bytes(meta_json)}
    if span is not None:
        offset, size = span
        with open(path, "rb", buffering=0) as f:
            data = os.pread(f.fileno(), size, offset)
        d[key] = cpu.Buffer.from_bytes(data)
    arr = zarr.open_array(MemoryStore(d), mode="r", zarr_format=3)
    return arr[tuple(slice(a, b) for a, b in region)]


def _grid(shape, shards):
    return [range(0, s, k) for s, k in zip(shape, shards)]


def regions(shape, shards):
    """Shard regions in C order, as ((start, stop), ...) per axis."""
    for starts in itertools.product(*_grid(shape, shards)):
        yield tuple((a, min(a + k, s)) for a, k, s in zip(starts, shards, shape))


def shard_key(region, shards) -> str:
    return "c/" + "/".join(str(a // k) for (a, _), k in zip(region, shards))


def n_shards(shape, shards) -> int:
    return math.prod(max(1, math.ceil(s / k)) for s, k in zip(shape, shards))


# ----------------------------------------------------------------------------- running


def _active_client():
    """The dask.distributed client when it is dask's active scheduler, else None."""
    try:
        from distributed import Client
    except ImportError:
        return None
    sched = dask.base.get_scheduler()
    owner = getattr(sched, "__self__", None)
    return owner if isinstance(owner, Client) else None


def _window() -> int:
    client = _active_client()
    if client is not None:
        try:
            n = sum(client.nthreads().values())
        except Exception:
            n = 2
        return max(2, n + 1)
    n = dask.config.get("num_workers", None) or os.cpu_count() or 2
    return max(2, int(n))


def stream(tasks: list, on_result: Callable, cancel: threading.Event | None) -> None:
    """Compute delayed ``tasks`` with at most a window of them in flight, handing each result
    to ``on_result`` in this thread as it arrives."""
    window = _window()
    client = _active_client()
    if client is not None:
        from distributed import as_completed

        pending = iter(tasks)
        first = [client.compute(t) for _, t in zip(range(window), pending)]
        ac = as_completed(first)
        try:
            for fut in ac:
                if cancel is not None and cancel.is_set():
                    raise WriteCancelled("cancelled")
                on_result(fut.result())
                fut.release()
                nxt = next(pending, None)
                if nxt is not None:
                    ac.add(client.compute(nxt))
        except BaseException:
            for fut in list(ac.futures):
                fut.cancel()
            raise
        return
    # Local schedulers: a sliding window of single-shard computes (each on the active
    # scheduler), so a slow shard never leaves the other cores idle.
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    scheduler = dask.base.get_scheduler()
    if scheduler is None or scheduler is dask.threaded.get:
        # Threads (dask's default): the window's threads ARE the pool; each computes its
        # shard start to finish, so memory is the window times one shard's working set
        # (nested thread pools would multiply both threads and memory).
        scheduler = dask.get
    elif scheduler is dask.get:
        window = 1
    pending = iter(tasks)

    def compute(task):
        return dask.compute(task, scheduler=scheduler)[0]

    with ThreadPoolExecutor(window, thread_name_prefix="ozx-shard") as pool:
        running = {pool.submit(compute, t) for _, t in zip(range(window), pending)}
        try:
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    if cancel is not None and cancel.is_set():
                        raise WriteCancelled("cancelled")
                    on_result(fut.result())
                    nxt = next(pending, None)
                    if nxt is not None:
                        running.add(pool.submit(compute, nxt))
        except BaseException:
            for fut in running:
                fut.cancel()
            raise


