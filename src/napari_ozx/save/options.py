"""How saved arrays are stored: inner chunks, shards, codecs (Zarr v3 sharding).

Defaults follow the issue: ~256x256 inner chunks in 2D, 64 (128 for 1-byte types) cubed in 3D,
1 along c and t; shards grown from the chunks along the space axes up to ~32 MiB; zstd inside
the shards and crc32c on the shard index.  Everything can be overridden.

Every inner chunk carries a checksum that readers following the specs verify without knowing
about us.  zstd: the frame's own content checksum (XXH64 of the pixels, ``checksum: true`` in
the codec's configuration), which every zstd decoder checks.  zarr's ``crc32c`` codec costs
about as much to check (a few % of a chunk's decode time either way; README, Reliability) but
zarrs (ngff-zarr's reader, through zarrista) does not verify it when it reads inner chunks out
of a shard, so a damaged chunk would still be shown there.  blosc and no compression: the
``crc32c`` codec after them (zarr-python and TensorStore check it).  gzip ends in a CRC-32
its decoders check: nothing is added.  ``checksum=False`` turns both off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = ["SHARD_BYTES", "CODECS", "StorageOptions", "ArrayLayout", "default_chunks",
           "default_shards"]

#: Target uncompressed size of one shard (the unit of work and of memory).
SHARD_BYTES = 32 << 20
CODECS = ("zstd", "blosc-zstd", "blosc-lz4", "gzip", "none")
_BLOSC_CNAMES: dict[str, Literal["zstd", "lz4"]] = {"blosc-zstd": "zstd", "blosc-lz4": "lz4"}

# ----------------------------------------------------------------------------- layout


def default_chunks(shape: Sequence[int], types: Sequence[str | None], itemsize: int
                   ) -> tuple[int, ...]:
    """Inner chunks: 256x256 in 2D, 64 (128 for 1-byte types) cubed in 3D, 1 along c and t."""
    space = [i for i, t in enumerate(types) if t == "space"]
    edge = 256 if len(space) < 3 else (128 if itemsize == 1 else 64)
    out = []
    for i, s in enumerate(shape):
        c = edge if i in space[-3:] else 1
        out.append(max(1, min(c, int(s))))
    return tuple(out)


def default_shards(shape: Sequence[int], chunks: Sequence[int], types: Sequence[str | None],
                   itemsize: int, target: int = SHARD_BYTES) -> tuple[int, ...]:
    """Shards: chunks doubled along the space axes (x first) while a shard stays under
    ``target`` bytes and within the array."""
    shard = list(chunks)
    space = [i for i, t in enumerate(types) if t == "space"][::-1]
    grew = True
    while grew:
        grew = False
        for i in space:
            if shard[i] >= shape[i]:
                continue
            if math.prod(shard) * 2 * itemsize > target:
                continue
            shard[i] *= 2
            grew = True
    return tuple(min(s, _round_up(n, c)) for s, n, c in zip(shard, shape, chunks, strict=True))


def _round_up(n: int, k: int) -> int:
    return max(k, -(-int(n) // k) * k)


class ArrayLayout(NamedTuple):
    """How one array (one level) is stored: its shape, inner chunk shape and shard shape."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...]


@dataclass(frozen=True)
class StorageOptions:
    """How arrays are stored.  ``chunks``/``shards`` apply to level 0 (clipped for smaller
    levels); None picks :func:`default_chunks` / :func:`default_shards`."""

    chunks: tuple[int, ...] | None = None
    shards: tuple[int, ...] | None = None
    codec: str = "zstd"
    level: int = 3
    index_crc32c: bool = True
    shard_bytes: int = SHARD_BYTES
    checksum: bool = True  # a checksum in each inner chunk (module docstring)
    #: unchanged arrays read from an archive keep their stored layout (and are copied); set
    #: when no chunk, shard or codec option was given (see :mod:`.rawcopy`)
    keep_layout: bool = False
    #: copy unchanged arrays read from an archive (False: encode everything again)
    copy_unchanged: bool = True

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, not {self.codec!r}")

    def codecs(self) -> list:
        """The inner codecs of a shard, as zarr codecs (zarr writes them into ``zarr.json``)."""
        # zarr is imported by the first save, not with this module (~0.2 s)
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec

        inner: list = [BytesCodec()]
        if self.codec == "zstd":
            inner.append(ZstdCodec(level=self.level, checksum=self.checksum))
        elif self.codec.startswith("blosc-"):
            inner.append(BloscCodec(cname=_BLOSC_CNAMES[self.codec], clevel=self.level,
                                    shuffle="bitshuffle"))
        elif self.codec == "gzip":
            inner.append(GzipCodec(level=self.level))
        if self.checksum and self.codec not in ("zstd", "gzip"):
            inner.append(Crc32cCodec())
        return inner

    def array_layout(self, shape: Sequence[int], types: Sequence[str | None], dtype: Any
                     ) -> ArrayLayout:
        """The :class:`ArrayLayout` of an array of ``shape``."""
        chunks, shards = self.layout(shape, types, dtype)
        return ArrayLayout(tuple(int(s) for s in shape), chunks, shards)

    def layout(self, shape: Sequence[int], types: Sequence[str | None], dtype: Any
               ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(chunks, shards) for an array of ``shape``."""
        itemsize = np.dtype(dtype).itemsize
        ndim = len(shape)
        if self.chunks is not None:
            # Given for the image's axes; a label image (no c) takes the trailing ones.
            if len(self.chunks) < ndim:
                raise ValueError(f"chunks {tuple(self.chunks)} has {len(self.chunks)} values "
                                 f"for {ndim} axes")
            chunks = tuple(max(1, min(int(c), int(s)))
                           for c, s in zip(self.chunks[len(self.chunks) - ndim:], shape,
                                           strict=True))
        else:
            chunks = default_chunks(shape, types, itemsize)
        if self.shards is not None:
            if len(self.shards) < ndim:
                raise ValueError(f"shards {tuple(self.shards)} has {len(self.shards)} values "
                                 f"for {ndim} axes")
            given = zip(self.shards[len(self.shards) - ndim:], chunks, shape, strict=True)
            shards = tuple(min(max(c, int(s) // c * c), _round_up(n, c)) for s, c, n in given)
        else:
            shards = default_shards(shape, chunks, types, itemsize, self.shard_bytes)
        return chunks, shards


