"""The 64-bit name hash the index sorts and looks names up by: one definition, scalar
(:func:`name_hash`, for a lookup) and vectorised over many names at once (for the
central-directory decoder, which hashes every name of a block without a Python call each).

Its own module because two readers of it, :mod:`.central` (computing) and :mod:`.index`
(looking up), must agree bit for bit; tests check the vectorised forms against the scalar one.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = ["name_hash", "hash_names", "hash_matrix"]

_M64 = 0xFFFFFFFFFFFFFFFF
_HASH_MULT = 0x9E3779B97F4A7C15
_HASH_POW = None  # uint64 powers of _HASH_MULT, grown on demand


def _hash_powers(n: int) -> np.ndarray:
    global _HASH_POW
    if _HASH_POW is None or len(_HASH_POW) < n:
        m = max(n, 64)
        p = np.full(m, _HASH_MULT, dtype=np.uint64)
        p[0] = 1
        with np.errstate(over="ignore"):
            _HASH_POW = np.cumprod(p, dtype=np.uint64)
    return _HASH_POW


def _mix(h: int) -> int:
    """splitmix64's finaliser: spreads every input bit over the result (the index sorts by
    the top bits)."""
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _M64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _M64
    return h ^ (h >> 31)


def name_hash(name: bytes) -> int:
    """The 64-bit hash the index sorts names by.

    The name, zero-padded to whole 8-byte little-endian words w_i, gives
    mix(sum(w_i * K**i) + length) (mod 2**64).
    """
    n = len(name)
    words = struct.unpack(f"<{(n + 7) // 8}Q", name + b"\0" * (-n % 8))
    h = 0
    k = 1
    for w in words:
        h = (h + w * k) & _M64
        k = (k * _HASH_MULT) & _M64
    return _mix((h + n) & _M64)


def _mix_array(h: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def _hash_words(words: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` of zero-padded names given as rows of little-endian u64 words."""
    pw = _hash_powers(words.shape[1])[: words.shape[1]]
    with np.errstate(over="ignore"):
        h = (words * pw).sum(axis=1, dtype=np.uint64)
        h += lengths.astype(np.uint64)
    return _mix_array(h)


def hash_names(blob: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` over names packed in ``blob`` (any lengths; the general path)."""
    n = len(starts)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    nwords = (lengths + 7) // 8
    width = int(nwords.max()) * 8
    out = np.empty(n, dtype=np.uint64)
    # Work in slices so the zero-padded copy stays small even for long names.
    step = max(1, (4 << 20) // max(width, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        ln = lengths[lo:hi]
        w = int(nwords[lo:hi].max()) * 8 if hi > lo else 8
        mat = np.zeros((hi - lo, max(w, 8)), dtype=np.uint8)
        total = int(ln.sum())
        if total:
            row = np.repeat(np.arange(hi - lo), ln)
            col = np.arange(total) - np.repeat(np.cumsum(ln) - ln, ln)
            mat[row, col] = blob[np.repeat(starts[lo:hi], ln) + col]
        out[lo:hi] = _hash_words(mat.view("<u8"), ln)
    return out


def hash_matrix(matrix: np.ndarray, mask: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`name_hash` of the names in the rows of ``matrix`` (``mask`` marks name bytes)."""
    if len(lengths) == 0:
        return np.zeros(0, dtype=np.uint64)
    width = matrix.shape[1]
    w8 = -(-width // 8) * 8
    padded = np.zeros((len(lengths), w8), dtype=np.uint8)
    np.multiply(matrix, mask, out=padded[:, :width], casting="unsafe")
    return _hash_words(padded.view("<u8"), lengths)
