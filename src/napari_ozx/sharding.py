"""Zarr v3 shards (``sharding_indexed``) encoded inner chunk by inner chunk, as the pixels come.

zarr-python encodes a shard from the whole shard in memory: the caller fills a shard-sized
buffer, zarr copies each inner chunk out of it, encodes it, and concatenates the encoded chunks
and the index into one more buffer.  The save does not need any of those copies: it computes
a shard slab by slab, and each inner chunk a slab completes can be encoded at once, so what a
shard holds in memory is its encoded chunks (a fraction of its pixels) plus one slab.
:class:`ShardEncoder` does that for the shard layouts the save creates; the bytes are those
zarr writes (same inner codecs from numcodecs, chunks in zarr's Morton order, empty chunks
left out, the same index), which the tests check byte for byte.

:meth:`ShardEncoder.from_metadata` reads an array's ``zarr.json`` and answers None for anything
it does not cover (other codecs, filters, a big-endian host...), so the caller falls back to
zarr.  No I/O here: a shard comes out as a list of byte blocks.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import sys
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

__all__ = ["ShardEncoder", "ShardBuilder", "morton_order"]

_EMPTY = 2**64 - 1
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float32", "float64"}


def morton_order(shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Every index of a grid of ``shape``, in Morton (Z) order with the first axis varying
    fastest: the order in which zarr lays out the chunks of a shard."""
    bits = max((int(n) - 1).bit_length() for n in shape) if shape else 0
    ndim = len(shape)

    def key(index):
        code = 0
        for b in range(bits):
            for d, i in enumerate(index):
                code |= ((i >> b) & 1) << (b * ndim + d)
        return code

    return sorted(itertools.product(*(range(int(n)) for n in shape)), key=key)


def _inner_codec(spec: dict, itemsize: int):
    """The numcodecs codec zarr uses for one bytes-to-bytes codec of the metadata, or None."""
    name, conf = spec.get("name"), spec.get("configuration") or {}
    if name == "zstd":
        from numcodecs import Zstd

        if set(conf) - {"level", "checksum"}:
            return None
        return Zstd(level=int(conf.get("level", 0)), checksum=bool(conf.get("checksum", False)))
    if name == "gzip":
        from numcodecs import GZip

        if set(conf) - {"level"}:
            return None
        return GZip(level=int(conf.get("level", 5)))
    if name == "blosc":
        from numcodecs import Blosc

        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}.get(conf.get("shuffle"))
        if shuffle is None or conf.get("typesize", itemsize) != itemsize:
            return None
        try:
            return Blosc(cname=conf["cname"], clevel=int(conf["clevel"]), shuffle=shuffle,
                         blocksize=int(conf.get("blocksize", 0)), typesize=itemsize)
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _little_endian_bytes(spec: dict, itemsize: int) -> bool:
    if spec.get("name") != "bytes":
        return False
    endian = (spec.get("configuration") or {}).get("endian")
    return endian == "little" or (endian is None and itemsize == 1)


class ShardEncoder:
    """Encodes the shards of one array the way zarr's ``ShardingCodec`` does."""

    def __init__(self, *, shard_shape, chunk_shape, shape, dtype, fill_value, codecs,
                 index_crc32c: bool, index_at_start: bool, separator: str = "/"):
        self.shard_shape = tuple(int(s) for s in shard_shape)
        self.chunk_shape = tuple(int(c) for c in chunk_shape)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.fill_value = self.dtype.type(fill_value)
        self.codecs = list(codecs)
        self.index_crc32c = index_crc32c
        self.index_at_start = index_at_start
        self.separator = separator
        self.per_shard = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))
        self.order = morton_order(self.per_shard)
        # position of each chunk (C order) in the index
        self._flat = {ix: i for i, ix in enumerate(itertools.product(
            *(range(n) for n in self.per_shard)))}

    @classmethod
    def from_metadata(cls, meta_json: bytes) -> ShardEncoder | None:
        """The encoder for the array described by ``meta_json``, or None when it is not a
        layout this module writes exactly as zarr does."""
        return _from_metadata(bytes(meta_json))

    def key(self, region) -> str:
        """The store key of the shard at ``region`` (default chunk key encoding)."""
        parts = [str(a // k) for (a, _), k in zip(region, self.shard_shape)]
        return self.separator.join(["c", *parts])

    def shard(self, region) -> ShardBuilder:
        return ShardBuilder(self, tuple((int(a), int(b)) for a, b in region))

    def encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        """One inner chunk (already of the full chunk shape), or None when it is all fill
        value (zarr leaves such chunks out)."""
        if self._is_fill(chunk):
            return None
        data = np.ascontiguousarray(chunk)
        for codec in self.codecs:
            data = codec.encode(data)
        return bytes(data) if not isinstance(data, bytes) else data

    def _is_fill(self, chunk: np.ndarray) -> bool:
        if self.fill_value == 0:
            return not chunk.any()
        return bool(np.all(chunk == self.fill_value))

    def index(self, spans: dict[tuple[int, ...], tuple[int, int]], offset: int) -> bytes:
        table = np.full((len(self._flat), 2), _EMPTY, dtype="<u8")
        for ix, (start, length) in spans.items():
            table[self._flat[ix]] = (start + offset, length)
        raw = table.tobytes()
        if self.index_crc32c:
            import google_crc32c

            raw += struct.pack("<I", google_crc32c.value(raw))
        return raw

    @property
    def index_size(self) -> int:
        return 16 * len(self._flat) + (4 if self.index_crc32c else 0)


@lru_cache(maxsize=64)
def _from_metadata(meta_json: bytes) -> ShardEncoder | None:
    if sys.byteorder != "little":
        return None
    try:
        meta = json.loads(meta_json)
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
            return None
        if meta.get("data_type") not in _DTYPES or meta.get("storage_transformers"):
            return None
        dtype = np.dtype(meta["data_type"])
        grid = meta["chunk_grid"]
        keys = meta["chunk_key_encoding"]
        separator = (keys.get("configuration") or {}).get("separator", "/")
        if grid.get("name") != "regular" or keys.get("name") != "default":
            return None
        codecs = meta["codecs"]
        if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
            return None
        conf = codecs[0]["configuration"]
        inner = conf["codecs"]
        if not inner or not _little_endian_bytes(inner[0], dtype.itemsize):
            return None
        numcodecs_ = [_inner_codec(c, dtype.itemsize) for c in inner[1:]]
        if any(c is None for c in numcodecs_) or len(numcodecs_) > 1:
            return None
        index = conf.get("index_codecs") or []
        if not index or not _little_endian_bytes(index[0], 8):
            return None
        if [c.get("name") for c in index[1:]] not in ([], ["crc32c"]):
            return None
        location = conf.get("index_location", "end")
        if location not in ("start", "end"):
            return None
        shard_shape = grid["configuration"]["chunk_shape"]
        chunk_shape = conf["chunk_shape"]
        if any(int(s) % int(c) for s, c in zip(shard_shape, chunk_shape)):
            return None
        fill = meta.get("fill_value", 0)
        if not isinstance(fill, (bool, int, float)) or (isinstance(fill, float)
                                                         and not math.isfinite(fill)):
            return None
        return ShardEncoder(shard_shape=shard_shape, chunk_shape=chunk_shape,
                            shape=meta["shape"], dtype=dtype, fill_value=fill,
                            codecs=numcodecs_, index_crc32c=len(index) == 2,
                            index_at_start=location == "start", separator=separator)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


class ShardBuilder:
    """One shard being encoded: :meth:`add` pixels (any boxes inside the shard, each pixel
    once), then :meth:`finish`.  An inner chunk is encoded as soon as all its pixels are in;
    only chunks that straddle the boxes added so far wait, in a chunk-sized buffer."""

    def __init__(self, encoder: ShardEncoder, region: tuple):
        self.encoder = encoder
        self.region = region
        self.encoded: dict[tuple[int, ...], bytes] = {}
        self._partial: dict[tuple[int, ...], list] = {}  # index -> [buffer, pixels missing]

    def _chunk_box(self, index) -> tuple:
        """The part of inner chunk ``index`` that lies inside the array (global coords)."""
        return tuple((r + i * c, min(r + (i + 1) * c, s))
                     for (r, _), i, c, s in zip(self.region, index, self.encoder.chunk_shape,
                                                self.encoder.shape))

    def add(self, box, pixels: np.ndarray) -> None:
        """The pixels of ``box`` (global coordinates, inside this shard)."""
        enc = self.encoder
        box = tuple((int(a), int(b)) for a, b in box)
        if tuple(pixels.shape) != tuple(b - a for a, b in box):
            raise ValueError(f"pixels of shape {pixels.shape} for box {box}")
        spans = [range((a - r) // c, (b - 1 - r) // c + 1)
                 for (a, b), (r, _), c in zip(box, self.region, enc.chunk_shape)]
        for index in itertools.product(*spans):
            cbox = self._chunk_box(index)
            lo = [max(a, x) for (a, _), (x, _) in zip(box, cbox)]
            hi = [min(b, y) for (_, b), (_, y) in zip(box, cbox)]
            src = pixels[tuple(slice(x - a, y - a) for x, y, (a, _) in zip(lo, hi, box))]
            whole = all(x == cx and y == cy for x, y, (cx, cy) in zip(lo, hi, cbox))
            full_size = all(y - x == c for (x, y), c in zip(cbox, enc.chunk_shape))
            if whole and full_size and index not in self._partial:
                self._put(index, src)
                continue
            slot = self._partial.get(index)
            if slot is None:
                buf = np.full(enc.chunk_shape, enc.fill_value, dtype=enc.dtype)
                slot = self._partial[index] = [buf, math.prod(y - x for x, y in cbox)]
            dst = tuple(slice(x - cx, y - cx) for x, y, (cx, _) in zip(lo, hi, cbox))
            slot[0][dst] = src
            slot[1] -= math.prod(y - x for x, y in zip(lo, hi))
            if slot[1] == 0:
                del self._partial[index]
                self._put(index, slot[0])

    def _put(self, index, chunk: np.ndarray) -> None:
        if index in self.encoded:
            raise ValueError(f"inner chunk {index} of shard {self.region} given twice")
        data = self.encoder.encode_chunk(chunk)
        self.encoded[index] = data  # None: all fill value, left out

    def finish(self) -> tuple[list, int] | None:
        """``(blocks, size)``: the shard's bytes as a list of blocks, or None when every
        chunk is fill value (zarr writes no shard then)."""
        if self._partial:
            raise ValueError(f"shard {self.region}: {len(self._partial)} inner chunks "
                             "are incomplete")
        enc = self.encoder
        # chunks entirely outside the array are never added: they are empty
        blocks, spans, pos = [], {}, 0
        for index in enc.order:
            data = self.encoded.get(index)
            if data:
                blocks.append(data)
                spans[index] = (pos, len(data))
                pos += len(data)
        self.encoded.clear()
        if not blocks:
            return None
        if enc.index_at_start:
            blocks.insert(0, enc.index(spans, enc.index_size))
        else:
            blocks.append(enc.index(spans, 0))
        return blocks, pos + enc.index_size
