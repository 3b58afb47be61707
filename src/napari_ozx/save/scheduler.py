"""Running the tasks of a save with a bounded window in flight: :func:`stream`.

:func:`stream` keeps a window of tasks (:class:`~.tasks.Work`) in flight on whatever dask
scheduler is active (threads, processes, synchronous, or a ``dask.distributed`` client), hands
each result over in the calling thread, and runs first the tasks that a result makes ready (the
next level's chunks), which bounds memory by the window whatever the image size.

It knows nothing of shards, pyramids or archives: the job (:mod:`.job`) gives it the tasks and
an ``on_result`` that files each result (:mod:`.collector`, :mod:`.cascade`) and returns the
tasks it makes ready.  A cancel (the ``threading.Event`` the widget sets) raises
:class:`~napari_ozx.errors.WriteCancelled` between two results.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import dask
import dask.threaded

from ..errors import WriteCancelled
from .tasks import Work

__all__ = ["stream"]


def _active_client() -> Any:
    """The dask.distributed client when it is dask's active scheduler, else None."""
    try:
        from distributed import Client
    except ImportError:
        return None
    sched = dask.base.get_scheduler()
    owner = getattr(sched, "__self__", None)
    return owner if isinstance(owner, Client) else None


def _window() -> int:
    """How many tasks may be in flight: one per worker thread (of the cluster, plus one so no
    worker waits for the next task; or of this machine)."""
    client = _active_client()
    if client is not None:
        try:
            n = sum(client.nthreads().values())
        except Exception:  # a cluster that cannot say: the least that keeps one task queued
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

    def run(w: Work) -> Any:
        parts = (dask.compute(d, scheduler=scheduler)[0] if dask.is_dask_collection(d) else d
                 for d in w.data)
        return w.fn(parts, *w.args)

    with ThreadPoolExecutor(window, thread_name_prefix="ozx-shard") as pool:
        running: dict[Future, Work] = {}

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


def _stream_distributed(client: Any, window: int, take: Callable[[], Work | None],
                        ready: deque[Work], on_result: Callable[[Work, Any], Iterable[Work]],
                        check_cancel: Callable[[], None]) -> None:
    from distributed import as_completed

    def submit(w: Work) -> Any:
        # hash=False: two tasks may hold equal pixels (chunks of zeros); hashed, they would
        # share one key, which the first to finish would release under the other
        data = [client.compute(d) if dask.is_dask_collection(d)
                else client.scatter(d, hash=False) for d in w.data]
        fut = client.submit(w.fn, data, *w.args, pure=False)
        owners[fut.key] = (w, data)
        return fut

    owners: dict[str, tuple[Work, list]] = {}
    first: list = []
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
