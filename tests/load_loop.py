"""The read loop of the load test (``test_read_load_faults.py``), one module so that the threads
of the test and its child processes (which put ``tests/`` on their path) run the same code.

Random inner chunks of three archives, each compared with the directory it was zipped from, or
with the rows of the 1M-entry archive.
"""

from __future__ import annotations

import random
import time

import numpy as np


def read_loop(arrays, reference, rows_of, seconds, seed, stop_at=None):
    """{'reads': n, 'errors': [...], 'mismatches': [...]} after ``seconds``."""
    rng = random.Random(seed)
    sharded, many, remote = arrays
    shape, chunks = sharded.shape, sharded.chunks
    grid = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    out = {"reads": 0, "bytes": 0, "errors": [], "mismatches": []}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        which = rng.randrange(3)
        try:
            if which == 1:
                i = rng.randrange(many.shape[0])
                got, want, where = many[i], rows_of(i), ("1M", i)
            else:
                ix = [rng.randrange(g) for g in grid]
                sel = tuple(slice(i * c, min((i + 1) * c, s))
                            for i, c, s in zip(ix, chunks, shape, strict=True))
                src = sharded if which == 0 else remote
                got, want = src[sel], reference[sel]
                where = ("local" if which == 0 else "http", ix)
            out["reads"] += 1
            out["bytes"] += got.nbytes
            if got.shape != want.shape or not np.array_equal(got, want):
                out["mismatches"].append(repr(where))
        except Exception as e:  # counted, and the test fails on any
            out["errors"].append(f"{type(e).__name__}: {e}"[:300])
    return out
