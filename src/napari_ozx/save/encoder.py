"""Zarr v3 shards (``sharding_indexed``) encoded inner chunk by inner chunk, as the pixels come.

zarr-python encodes a shard from the whole shard in memory: the caller fills a shard-sized
buffer, zarr copies each inner chunk out of it, encodes it, and concatenates the encoded chunks
and the index into one more buffer.  The save does not need any of those copies: it computes
a shard slab by slab, and each inner chunk a slab completes can be encoded at once, so what a
shard holds in memory is one slab, and, until they are written, its encoded chunks.
:class:`ShardEncoder` encodes the inner chunks of a box and :class:`ShardBuilder` gathers
them into a shard, for the shard layouts the save creates.  The bytes are those zarr writes
(the same inner codecs from numcodecs, chunks in zarr's Morton order, empty chunks left out,
the same index), which the tests check byte for byte; a streamed shard differs only in the
order of its chunks, which the index records.

:meth:`ShardEncoder.from_metadata` reads an array's ``zarr.json`` and answers None for anything
it does not cover (other codecs, filters, other chunk grids...).  No I/O here: a shard comes
out as a list of byte blocks (:class:`HeldShard`), or is appended to a sink the caller opens
(an archive entry), chunk by chunk as the chunks are encoded.  It does not decide layouts
(:mod:`.options`), cut arrays into cells (:mod:`.grid`) or write archives (:mod:`.collector`).

Inputs: the ``zarr.json`` zarr made for the array (:mod:`.job`) and the pixels of whole inner
chunks (:mod:`.tasks`, in the workers).  Outputs: encoded chunks, which travel back to the
caller's process, and shards, which :class:`~.collector.ShardCollector` builds and writes.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import numpy as np
from zarr.core.indexing import morton_order_iter

from .grid import Grid, Region

__all__ = ["ShardEncoder", "ShardBuilder", "HeldShard", "MemoryHold", "Hold", "Sink"]

_EMPTY = 2**64 - 1
_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"}


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

        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}.get(str(conf.get("shuffle")))
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
                 index_crc32c: bool, index_at_start: bool, separator: str = "/",
                 chunk_crc32c: bool = False):
        self.shard_shape = tuple(int(s) for s in shard_shape)
        self.chunk_shape = tuple(int(c) for c in chunk_shape)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.stored_dtype = self.dtype.newbyteorder("<")  # the bytes codec: little endian
        self.fill_value = self.dtype.type(fill_value)
        self.codecs = list(codecs)
        self.index_crc32c = index_crc32c
        self.chunk_crc32c = chunk_crc32c  # zarr's crc32c codec last: 4 bytes after each chunk
        self.index_at_start = index_at_start
        self.separator = separator
        self.grid = Grid(self.shape, self.shard_shape)
        self.per_shard = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape,
                                                     strict=True))
        # the order in which zarr lays out the chunks of a shard (its own helper: the same
        # order by construction, not by a copy of its arithmetic)
        self.order: list[tuple[int, ...]] = list(morton_order_iter(self.per_shard))
        # position of each chunk (C order) in the index
        self._flat = {ix: i for i, ix in enumerate(itertools.product(
            *(range(n) for n in self.per_shard)))}

    @classmethod
    def from_metadata(cls, meta_json: bytes) -> ShardEncoder | None:
        """The encoder for the array described by ``meta_json``, or None when it is not a
        layout this module writes exactly as zarr does."""
        return _from_metadata(bytes(meta_json))

    def key(self, index: Sequence[int]) -> str:
        """The store key of shard ``index`` (default chunk key encoding)."""
        return self.separator.join(["c", *map(str, index)])

    def shard(self, index: Sequence[int], hold: Hold | None = None) -> ShardBuilder[Any]:
        return ShardBuilder(self, tuple(index), hold)

    def shard_region(self, index: Sequence[int]) -> Region:
        return self.grid.region(index)

    def chunks_in(self, index: Sequence[int]) -> int:
        """How many inner chunks of shard ``index`` lie (at least partly) inside the array."""
        return math.prod(-(-(b - a) // c)
                         for (a, b), c in zip(self.shard_region(index), self.chunk_shape,
                                                strict=True))

    def shard_of(self, chunk: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(shard index, index inside the shard) of inner chunk ``chunk`` (array-wide)."""
        shard = tuple(int(c) // n for c, n in zip(chunk, self.per_shard, strict=True))
        return shard, tuple(int(c) - s * n
                            for c, s, n in zip(chunk, shard, self.per_shard, strict=True))

    def encode_box(self, box, pixels: np.ndarray) -> list[tuple[tuple[int, ...], bytes | None]]:
        """Every inner chunk of ``box`` (array coordinates; whole chunks, those at the array's
        edge clipped to it): ``[(chunk index, encoded bytes or None)]``."""
        box = tuple((int(a), int(b)) for a, b in box)
        if tuple(pixels.shape) != tuple(b - a for a, b in box):
            raise ValueError(f"pixels of shape {pixels.shape} for box {box}")
        for (a, b), c, s in zip(box, self.chunk_shape, self.shape, strict=True):
            if a % c or (b % c and b != s):
                raise ValueError(f"box {box} does not hold whole inner chunks {self.chunk_shape}")
        out = []
        spans = [range(a // c, -(-b // c)) for (a, b), c in zip(box, self.chunk_shape, strict=True)]
        for chunk in itertools.product(*spans):
            sel = tuple(slice(i * c - a, min((i + 1) * c, b) - a)
                        for i, c, (a, b) in zip(chunk, self.chunk_shape, box, strict=True))
            part = pixels[sel]
            if part.shape != self.chunk_shape:  # at the array's edge: padded with fill value
                full = np.full(self.chunk_shape, self.fill_value, dtype=self.dtype)
                full[tuple(slice(0, n) for n in part.shape)] = part
                part = full
            out.append((chunk, self.encode_chunk(part)))
        return out

    def encode_chunk(self, chunk: np.ndarray) -> bytes | None:
        """One inner chunk (already of the full chunk shape), or None when it is all fill
        value (zarr leaves such chunks out)."""
        pixels = np.ascontiguousarray(chunk, dtype=self.stored_dtype)
        if self._is_fill(pixels):
            return None
        encoded: Any = pixels
        for codec in self.codecs:
            encoded = codec.encode(encoded)
        data = encoded if isinstance(encoded, bytes) else bytes(encoded)
        if self.chunk_crc32c:
            data += struct.pack("<I", _crc32c(data))
        return data

    def _is_fill(self, chunk: np.ndarray) -> bool:
        """Whether a (contiguous) chunk holds only the fill value, as zarr decides it."""
        if self.fill_value == 0:
            if self.dtype.kind in "biu" and chunk.nbytes % 8 == 0:
                return not chunk.reshape(-1).view(np.uint64).any()  # the bits, 8 bytes at a time
            return not chunk.any()  # floats: -0.0 counts as 0, as in zarr
        return bool(np.all(chunk == self.fill_value))

    def index_bytes(self, spans: dict[tuple[int, ...], tuple[int, int]], offset: int
                    ) -> bytes:
        """The shard index (and its crc32c) for chunks at ``spans`` (+ ``offset``)."""
        table = np.full((len(self._flat), 2), _EMPTY, dtype="<u8")
        for ix, (start, length) in spans.items():
            table[self._flat[ix]] = (start + offset, length)
        raw = table.tobytes()
        if self.index_crc32c:
            raw += struct.pack("<I", _crc32c(raw))
        return raw

    @property
    def index_size(self) -> int:
        return 16 * len(self._flat) + (4 if self.index_crc32c else 0)


def _crc32c(data) -> int:
    """CRC-32C as zarr's crc32c codec computes it (google-crc32c, which zarr depends on)."""
    import google_crc32c

    return google_crc32c.value(data)


@lru_cache(maxsize=64)
def _from_metadata(meta_json: bytes) -> ShardEncoder | None:
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
        chunk_crc32c = inner[-1].get("name") == "crc32c" and len(inner) > 1
        if chunk_crc32c:
            inner = inner[:-1]
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
        if any(int(s) % int(c) for s, c in zip(shard_shape, chunk_shape, strict=True)):
            return None
        fill = meta.get("fill_value", 0)
        if not isinstance(fill, (bool, int, float)) or (isinstance(fill, float)
                                                         and not math.isfinite(fill)):
            return None
        return ShardEncoder(shard_shape=shard_shape, chunk_shape=chunk_shape,
                            shape=meta["shape"], dtype=dtype, fill_value=fill,
                            codecs=numcodecs_, index_crc32c=len(index) == 2,
                            index_at_start=location == "start", separator=separator,
                            chunk_crc32c=chunk_crc32c)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


class Hold(Protocol):
    """Where a held shard keeps its encoded chunks until it is written: in memory
    (:class:`MemoryHold`) or in a file (:class:`.spill.Spill`)."""

    def append(self, data: bytes | memoryview) -> int:
        """Keep ``data``; returns its offset."""
        ...

    def read(self, offset: int, length: int) -> bytes | memoryview: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a streamed shard goes as its chunks come: an open archive entry."""

    def append(self, data: bytes | memoryview) -> int:
        """Append ``data``; returns its offset in the shard."""
        ...


SinkT = TypeVar("SinkT", bound=Sink)


class HeldShard(NamedTuple):
    """A held shard, ready to be written: its byte blocks (read from the hold as they are
    iterated, which closes it) and their total size."""

    blocks: Iterator[bytes | memoryview]
    size: int


class MemoryHold:
    """Where a held shard keeps its encoded chunks by default: one growing buffer (not one
    allocation per chunk, which would pin as many holes of the heap)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def append(self, data: bytes | memoryview) -> int:
        at = len(self._buf)
        self._buf += data
        return at

    def read(self, offset: int, length: int) -> memoryview:
        return memoryview(self._buf)[offset:offset + length]

    def close(self) -> None:
        self._buf = bytearray()


class ShardBuilder(Generic[SinkT]):
    """The encoded inner chunks of one shard, collected in any order (:meth:`put`), until
    every chunk inside the array is in (:attr:`complete`).

    Held, the chunks are kept by ``hold`` (a :class:`Hold`; in memory by default, the caller
    may give one that spills to a file) and :meth:`finish` answers the shard's bytes (chunks
    in zarr's Morton order, then the index).  Streamed (:meth:`stream_to`), every chunk is
    appended to a sink as it comes, in arrival order, and only its span is kept;
    :meth:`finish` appends the index.  The sink is opened at the first non-empty chunk, so a
    shard of fill value only never opens one (zarr writes no such shard).
    """

    def __init__(self, encoder: ShardEncoder, index: tuple[int, ...],
                 hold: Hold | None = None):
        self.encoder = encoder
        self.index = tuple(index)
        self.region = encoder.shard_region(self.index)
        self.expected = encoder.chunks_in(self.index)
        self.received = 0
        self._hold: Hold = hold if hold is not None else MemoryHold()
        self._held: dict[tuple[int, ...], tuple[int, int]] = {}  # local -> (offset, length)
        self._spans: dict[tuple[int, ...], tuple[int, int]] = {}
        self._open_sink: Callable[[], SinkT] | None = None
        self.sink: SinkT | None = None

    @property
    def complete(self) -> bool:
        return self.received == self.expected

    @property
    def streamed(self) -> bool:
        return self._open_sink is not None

    def put(self, local: tuple[int, ...], data: bytes | None) -> None:
        """Inner chunk ``local`` (index inside the shard) encoded, or None: all fill value."""
        if local in self._held or local in self._spans:
            raise ValueError(f"inner chunk {local} of shard {self.index} given twice")
        self.received += 1
        if self.received > self.expected:
            raise ValueError(f"shard {self.index} got more than its {self.expected} chunks")
        if not data:
            return
        if self._open_sink is None:
            self._held[local] = (self._hold.append(data), len(data))
        else:
            self._append(local, data)

    def _append(self, local: tuple[int, ...], data: bytes | memoryview) -> None:
        if self.sink is None:
            assert self._open_sink is not None  # only called once streamed
            self.sink = self._open_sink()
        self._spans[local] = (self.sink.append(data), len(data))

    def stream_to(self, open_sink: Callable[[], SinkT]) -> None:
        """From now on append chunks to ``open_sink()`` (called once, when the first
        non-empty chunk is there), those held so far first."""
        if self.encoder.index_at_start:
            return  # the index goes first: the shard must be held whole
        self._open_sink = open_sink
        held, self._held = self._held, {}
        for local in self.encoder.order:
            if local in held:
                self._append(local, self._hold.read(*held[local]))
        self._hold.close()

    def close(self) -> None:
        """Drop what is held (the shard will not be written)."""
        self._held = {}
        self._hold.close()

    def finish(self) -> HeldShard | SinkT | None:
        """Held: :meth:`finish_held`; streamed: :meth:`finish_streamed`."""
        return self.finish_streamed() if self.streamed else self.finish_held()

    def _check_complete(self) -> None:
        if not self.complete:
            raise ValueError(f"shard {self.index}: {self.expected - self.received} inner "
                             "chunks are missing")

    def finish_streamed(self) -> SinkT | None:
        """The sink, with the index appended, or None when it was never opened (every chunk
        fill value)."""
        self._check_complete()
        if self.sink is not None:
            self.sink.append(self.encoder.index_bytes(self._spans, 0))
        return self.sink

    def finish_held(self) -> HeldShard | None:
        """The shard's bytes, or None (every chunk fill value)."""
        self._check_complete()
        enc = self.encoder
        held, self._held = self._held, {}
        if not held:
            self._hold.close()
            return None
        order = [local for local in enc.order if local in held]
        spans, pos = {}, 0
        for local in order:
            _, length = held[local]
            spans[local] = (pos, length)
            pos += length
        index = enc.index_bytes(spans, enc.index_size if enc.index_at_start else 0)
        hold = self._hold

        def blocks() -> Iterator[bytes | memoryview]:
            try:
                if enc.index_at_start:
                    yield index
                for local in order:
                    yield hold.read(*held[local])
                if not enc.index_at_start:
                    yield index
            finally:
                hold.close()

        return HeldShard(blocks(), pos + enc.index_size)
