"""Shard tasks, the loop that runs them, and the collector that files their results.

A task (:class:`Work`) computes some whole inner chunks of a level (a slab of a shard, or
chunks assembled from the level above), encodes them (:mod:`.sharding`) and, when a pyramid
level follows, downsamples them into a piece of that level (:func:`encode_task`), so it can run
anywhere (threads, processes, ``dask.distributed`` workers); only the encoded chunks and the
piece travel back.  :func:`stream` keeps a window of tasks in flight, hands each result over
in the calling thread, and runs first the tasks that a result makes ready (the next level's
chunks), which bounds memory by the window whatever the image size.  :class:`ShardCollector`
gathers the encoded chunks into shards and writes them to the archive: the shard being
written streams into it, the others wait in :class:`Spill` files.  :func:`read_shard` reads a
shard back from the archive being written (by path and byte span), for pyramids whose chunks
do not line up with the downsampling windows.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.threaded
import numpy as np

from ..errors import OzxError
from ..zip._io import FileEndedError, pread_exactly, pwrite_all

__all__ = ["WriteCancelled", "Work", "Spill", "ShardCollector", "encode_task", "slab_chunks",
           "slab_regions", "read_shard", "n_shards", "stream"]


class WriteCancelled(OzxError):
    """The write was cancelled; the destination was left as it was."""


def values_present(block: np.ndarray) -> np.ndarray:
    """The distinct values of a label block, sorted.  Every value starts a run of equal values
    in C order, and a label image has few runs: ``np.unique`` of the run starts (one pass of
    compares) is 6x faster than ``np.unique`` of the block on a 64 x 256 x 256 uint16 slab,
    and no slower than it where every pixel differs."""
    flat = block.reshape(-1)
    if flat.size < 2:
        return np.unique(flat)
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    return np.unique(np.concatenate([flat[:1], flat[starts]]))


def encode_task(parts: Iterable, meta_json: bytes, boxes: list, unique: bool, step,
                method: str):
    """Encode the inner chunks of ``boxes`` (each whole inner chunks of the array described by
    ``meta_json``), given as ``parts`` (their pixels, computed one after another); with a
    ``step``, also downsample each box for the next level.  Returns
    ``([(chunk index, bytes or None)], unique values or None, [(box, piece)])``.
    """
    from .cascade import piece_box
    from .pyramid import downsample_block
    from .encoder import ShardEncoder

    encoder = ShardEncoder.from_metadata(meta_json)
    if encoder is None:  # the save creates only layouts it covers
        raise OzxError("no shard encoder for this array's layout")
    values, pieces, chunks = None, [], []
    for box, block in zip(boxes, parts):
        block = np.asarray(block)
        chunks += encoder.encode_box(box, block)
        if unique:
            found = values_present(block)
            values = found if values is None else np.union1d(values, found)
        if step is not None:
            pieces.append((piece_box(box, step), downsample_block(block, step, method)))
        del block
    return chunks, values, pieces


def slab_chunks(shape, shards, chunks, step=None, source_chunks=None) -> tuple:
    """Dask chunks that cut each shard into slabs along one axis (the first along which a
    shard holds several inner chunks): whole layers of inner chunks and of downsampling
    windows, cut only where a chunk of ``source_chunks`` ends (so no source chunk is computed
    twice for one shard)."""
    from .encoder import Grid

    out = list(Grid(tuple(shape), tuple(shards)).dask_chunks)
    axis = next((i for i, (k, c, s) in enumerate(zip(shards, chunks, shape))
                 if min(k, s) > c), None)
    if axis is None:
        return tuple(out)
    unit = math.lcm(int(chunks[axis]), int(step[axis]) if step is not None else 1)
    ends = None
    if source_chunks is not None:
        ends = set(itertools.accumulate(source_chunks[axis]))
    sizes = []
    for a in range(0, shape[axis], shards[axis]):
        b, last = min(a + shards[axis], shape[axis]), a
        for cut in range(a + unit, b, unit):
            if ends is None or cut in ends:
                sizes.append(cut - last)
                last = cut
        sizes.append(b - last)
    out[axis] = tuple(sizes)
    return tuple(out)


def slab_regions(slab_grid: tuple, region: tuple, origin=None) -> list[tuple[tuple, tuple]]:
    """``[(block index, slab region)]`` of the slabs of ``slab_grid`` (dask chunks, starting
    at ``origin``) that make up ``region``."""
    origin = origin or (0,) * len(slab_grid)
    starts = [tuple(itertools.accumulate(c, initial=o))[:-1] for c, o in zip(slab_grid, origin)]
    ranges = [range(bisect.bisect_left(st, a), bisect.bisect_left(st, b))
              for st, (a, b) in zip(starts, region)]
    return [(index, tuple((st[i], st[i] + c[i]) for st, c, i in zip(starts, slab_grid, index)))
            for index in itertools.product(*ranges)]


class Spill:
    """Bytes set aside in an unnamed temporary file in ``directory`` until they are written:
    they wait in the page cache, not in this process's memory (a shard of a lower pyramid
    level collects its chunks over many shards of the level above).  The file is created at
    the first :meth:`append` and gone at :meth:`close`."""

    def __init__(self, directory: str):
        self.directory = directory
        self.fd = -1
        self.size = 0

    def _open(self) -> None:
        try:
            self.fd = os.open(self.directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except (AttributeError, OSError):  # no O_TMPFILE here, or not on this file system
            import tempfile

            with tempfile.TemporaryFile(dir=self.directory) as f:
                self.fd = os.dup(f.fileno())

    def append(self, data) -> int:
        if self.fd < 0:
            self._open()
        at = self.size
        self.size += pwrite_all(self.fd, data, at)
        return at

    def read(self, offset: int, length: int) -> bytes:
        try:
            return pread_exactly(self.fd, offset, length)
        except FileEndedError as e:  # a short spill file is a bug here
            raise OzxError(f"spill file ended at {e.at} of {offset + length}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ShardCollector:
    """Encoded inner chunks of level ``k`` and the levels below it (``depth`` 0, 1, ...),
    gathered into their shards and written to the archive ``writer``.

    Level ``k``'s shards are written in the order of ``heads``: the first not yet written
    streams into an open entry of the writer as its chunks come; the others, and the shards
    of the lower levels (which fill over many shards of the level above), wait in
    :class:`Spill` files until they are complete and the open entry is committed.
    ``on_shard`` is called for every shard done (written, or left out as all fill value).
    """

    def __init__(self, writer, names: Sequence[str], encoders: Sequence, heads: Sequence,
                 spill_dir: str, on_shard: Callable[[], None]):
        self.writer = writer
        self.names = list(names)  # array path of each depth
        self.encoders = list(encoders)
        self.heads = list(heads)
        self.head = 0
        self.spill_dir = spill_dir
        self.on_shard = on_shard
        self._open: list[dict] = [{} for _ in self.encoders]  # depth -> shard index -> builder
        self._waiting: deque[tuple[str, tuple, Any]] = deque()  # (entry, (blocks, size), builder)

    def __enter__(self) -> ShardCollector:
        self._advance()
        return self

    def __exit__(self, *exc) -> None:
        # after a failure or a cancel, the spill files of what was not written
        for builders in self._open:
            for b in builders.values():
                b.close()
        while self._waiting:
            self._waiting.popleft()[2].close()

    @property
    def unfinished(self) -> list[int]:
        """Shards partly filled, per depth, and level ``k``'s shards not written yet."""
        return [len(b) for b in self._open] + [len(self.heads) - self.head]

    def add(self, depth: int, encoded: Iterable) -> None:
        """``[(chunk index, bytes or None)]`` of level ``k + depth``."""
        encoder = self.encoders[depth]
        complete = {}
        for chunk, data in encoded:
            index, local = encoder.shard_of(chunk)
            b = self._builder(depth, index)
            b.put(local, data)
            if b.complete:
                complete[index] = b
        if depth == 0:
            self._advance()
        else:
            for b in complete.values():
                self._write_held(depth, b)

    def _entry(self, depth: int, index) -> str:
        return f"{self.names[depth]}/{self.encoders[depth].key(index)}"

    def _builder(self, depth: int, index):
        b = self._open[depth].get(index)
        if b is None:
            b = self.encoders[depth].shard(index, Spill(self.spill_dir))
            self._open[depth][index] = b
        return b

    def _streaming(self) -> bool:
        """Whether level k's head shard holds the archive's end (its entry is open)."""
        if self.head >= len(self.heads):
            return False
        b = self._open[0].get(self.heads[self.head])
        return b is not None and b.sink is not None

    def _write_held(self, depth: int, b) -> None:
        out = b.finish()
        del self._open[depth][b.index]
        self.on_shard()
        if out is not None:
            self._waiting.append((self._entry(depth, b.index), out, b))
        if not self._streaming():
            self._flush()

    def _flush(self) -> None:
        while self._waiting:
            key, (blocks, size), _ = self._waiting.popleft()
            self.writer.write_stream(key, blocks, size)

    def _advance(self) -> None:
        """Write level k's shards that are complete, in order; stream the next one."""
        while self.head < len(self.heads):
            index = self.heads[self.head]
            b = self._builder(0, index)
            if not b.complete:
                if not b.streamed:
                    b.stream_to(lambda i=index: self.writer.open_entry(self._entry(0, i)))
                return
            self.head += 1
            if not b.streamed:  # complete before its turn (or held whole: index at the start)
                self._write_held(0, b)
                continue
            sink = b.finish()
            if sink is not None:
                sink.commit()
            del self._open[0][index]
            self.on_shard()
            self._flush()


@dataclass
class Work:
    """One task: ``fn(parts, *args)``, where ``parts`` are the values of ``data``, a list of
    dask collections (computed one after another where the task runs) or arrays in memory."""

    fn: Callable
    data: list
    args: tuple
    tag: Any = None  # for the caller (the save: which level the task's chunks are of)


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


def stream(work: Iterable[Work], on_result: Callable[[Work, Any], Iterable[Work]],
           cancel: threading.Event | None) -> None:
    """Run ``work`` with at most a window of tasks in flight, handing each result to
    ``on_result`` in this thread as it arrives; the tasks it returns run before the rest."""
    window = _window()
    pending = iter(work)
    ready: deque[Work] = deque()

    def take() -> Work | None:
        return ready.popleft() if ready else next(pending, None)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise WriteCancelled("cancelled")

    client = _active_client()
    if client is not None:
        _stream_distributed(client, window, take, ready, on_result, check_cancel)
        return
    # Local schedulers: a sliding window of single-task computes (each on the active
    # scheduler), so a slow task never leaves the other cores idle.
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    scheduler = dask.base.get_scheduler()
    if scheduler is None or scheduler is dask.threaded.get:
        # Threads (dask's default): the window's threads ARE the pool; each computes its
        # task start to finish, so memory is the window times one task's working set
        # (nested thread pools would multiply both threads and memory).
        scheduler = dask.get
    elif scheduler is dask.get:
        window = 1

    def run(w: Work):
        parts = (dask.compute(d, scheduler=scheduler)[0] if dask.is_dask_collection(d) else d
                 for d in w.data)
        return w.fn(parts, *w.args)

    with ThreadPoolExecutor(window, thread_name_prefix="ozx-shard") as pool:
        running: dict = {}

        def fill() -> None:
            while len(running) < window:
                w = take()
                if w is None:
                    return
                running[pool.submit(run, w)] = w

        fill()
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    w = running.pop(fut)
                    check_cancel()
                    ready.extend(on_result(w, fut.result()))
                fill()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise


def _stream_distributed(client, window, take, ready, on_result, check_cancel) -> None:
    from distributed import as_completed

    def submit(w: Work):
        # hash=False: two tasks may hold equal pixels (chunks of zeros); hashed, they would
        # share one key, which the first to finish would release under the other
        data = [client.compute(d) if dask.is_dask_collection(d)
                else client.scatter(d, hash=False) for d in w.data]
        fut = client.submit(w.fn, data, *w.args, pure=False)
        owners[fut.key] = (w, data)
        return fut

    owners: dict = {}
    first = []
    while len(first) < window and (w := take()) is not None:
        first.append(submit(w))
    ac = as_completed(first)
    try:
        for fut in ac:
            check_cancel()
            w, data = owners.pop(fut.key)
            result = fut.result()
            fut.release()
            for d in data:
                d.release()
            ready.extend(on_result(w, result))
            while ac.count() < window and (w := take()) is not None:
                ac.add(submit(w))
    except BaseException:
        for fut in list(ac.futures):
            fut.cancel()
        raise
