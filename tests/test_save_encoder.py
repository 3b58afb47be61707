"""Our shard encoder (napari_ozx.save.encoder) against zarr-python's ShardingCodec: the same bytes
for every layout the save writes, whatever boxes the pixels come in."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import zarr
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)
from zarr.core.indexing import morton_order_iter
from zarr.storage import MemoryStore

from napari_ozx.save.encoder import ShardEncoder
from napari_ozx.save.grid import Grid


def _zarr_array(shape, shards, chunks, dtype, inner, *, crc=True, location="end"):
    store = MemoryStore()
    arr = zarr.create_array(
        store, name="a", shape=shape, dtype=dtype, chunks=shards,
        serializer=ShardingCodec(chunk_shape=chunks, codecs=[BytesCodec(), *inner],
                                 index_codecs=[BytesCodec()] + ([Crc32cCodec()] if crc else []),
                                 index_location=location),
        compressors=None, filters=None, fill_value=0)
    return store, arr


def _slabs(rng, region, chunks, shape):
    """``region`` cut along its first axis into slabs of whole inner chunks, at random."""
    a, b = region[0]
    inner = list(range(a + chunks[0], b, chunks[0]))
    cuts = sorted({a, b, *(int(x) for x in rng.choice(inner, size=min(2, len(inner)),
                                                      replace=False))} if inner else {a, b})
    return [((lo, hi), *region[1:]) for lo, hi in itertools.pairwise(cuts)]


@pytest.mark.parametrize("shape", [(2, 4), (3, 2), (4, 4, 4), (1, 3, 5), (5, 1, 2), (3,), (6, 7)])
def test_morton_order_is_zarrs(shape):
    encoder = ShardEncoder(shard_shape=shape, chunk_shape=(1,) * len(shape), shape=shape,
                           dtype="uint8", fill_value=0, codecs=[], index_crc32c=True,
                           index_at_start=False)
    assert encoder.order == list(morton_order_iter(shape))


CASES = [
    # shape, shards, chunks, dtype, inner codecs, crc32c, index location, sparse
    ((100, 300), (64, 128), (32, 64), "uint16", [ZstdCodec(level=3)], True, "end", False),
    ((70, 90, 130), (32, 64, 64), (16, 16, 32), "uint8", [ZstdCodec(level=1)], True, "start",
     False),
    ((70, 90), (64, 64), (16, 16), "float32",
     [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")], True, "end", False),
    ((70, 90), (64, 64), (16, 16), "int32", [GzipCodec(level=4)], False, "end", False),
    ((70, 90), (64, 64), (16, 16), "uint16", [], True, "end", True),  # codec "none"
    ((50, 90), (64, 64), (8, 16), "uint32", [ZstdCodec(level=3)], True, "end", True),
    ((3, 40, 50), (1, 32, 32), (1, 16, 16), "int64", [ZstdCodec(level=3)], True, "end", True),
    # a checksum after every inner chunk (what the save writes by default)
    ((100, 300), (64, 128), (32, 64), "uint16", [ZstdCodec(level=3, checksum=True)], True,
     "end", True),
    ((100, 300), (64, 128), (32, 64), "uint16", [ZstdCodec(level=3), Crc32cCodec()], True,
     "end", True),
    ((70, 90, 130), (32, 64, 64), (16, 16, 32), "uint8", [ZstdCodec(level=1), Crc32cCodec()],
     True, "start", False),
    ((70, 90), (64, 64), (16, 16), "float32",
     [BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle"), Crc32cCodec()], True, "end", False),
    ((70, 90), (64, 64), (16, 16), "uint16", [Crc32cCodec()], False, "end", True),  # no codec
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}-" + "+".join(
    type(x).__name__[:-5] + ("(checksum)" if getattr(x, "checksum", False) else "")
    for x in c[4]))
def test_shards_are_byte_identical_to_zarrs(case):
    shape, shards, chunks, dtype, inner, crc, location, sparse = case
    rng = np.random.default_rng(len(shape) * 100 + shards[0])
    store, arr = _zarr_array(shape, shards, chunks, dtype, inner, crc=crc, location=location)
    data = rng.integers(0, 50, size=shape).astype(dtype)
    if sparse:  # some inner chunks (and shards) all zero: zarr leaves them out
        data[data < 48] = 0
        data[: shape[0] // 2] = 0
    arr[...] = data
    encoder = ShardEncoder.from_metadata(store._store_dict["a/zarr.json"].to_bytes())
    assert encoder is not None
    written = 0
    for region in Grid(shape, shards).regions:
        slabs = _slabs(rng, region, chunks, shape)
        encoded = [c for box in reversed(slabs)  # in any order
                   for c in encoder.encode_box(box, data[tuple(slice(a, b) for a, b in box)])]
        index = encoder.shard_of(encoded[0][0])[0]
        builder = encoder.shard(index)
        assert builder.region == region
        for chunk, data_ in encoded:
            builder.put(encoder.shard_of(chunk)[1], data_)
        assert builder.complete
        out = builder.finish()
        ref = store._store_dict.get("a/" + encoder.key(index))
        if ref is None:
            assert out is None, f"zarr wrote no shard {region}, we did"
            continue
        blocks, size = out
        got = b"".join(bytes(b) for b in blocks)
        assert len(got) == size
        assert got == ref.to_bytes(), f"shard {region} differs"
        written += 1
    assert written > 0
    # and zarr reads ours back
    assert np.array_equal(arr[...], data)


def _meta(**kw) -> bytes:
    store, _ = _zarr_array((64, 64), (32, 32), (16, 16), "uint16", [ZstdCodec(level=3)])
    meta = json.loads(store._store_dict["a/zarr.json"].to_bytes())
    for path, value in kw.items():
        node = meta
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[leaf] = value
    return json.dumps(meta).encode()


def test_only_layouts_written_exactly_as_zarr_does_are_taken():
    assert ShardEncoder.from_metadata(_meta()) is not None
    # anything else: None, and the save falls back to zarr
    assert ShardEncoder.from_metadata(_meta(data_type="complex64")) is None
    assert ShardEncoder.from_metadata(_meta(fill_value="NaN")) is None
    assert ShardEncoder.from_metadata(b"not json") is None
    big = {"name": "bytes", "configuration": {"endian": "big"}}
    assert ShardEncoder.from_metadata(_meta(**{"codecs.0.configuration.codecs": [big]})) is None
    two = [{"name": "bytes", "configuration": {"endian": "little"}},
           {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
           {"name": "gzip", "configuration": {"level": 1}}]
    assert ShardEncoder.from_metadata(_meta(**{"codecs.0.configuration.codecs": two})) is None
    store = MemoryStore()
    zarr.create_array(store, name="t", shape=(8, 8), dtype="uint8", chunks=(4, 4),
                      serializer=ShardingCodec(chunk_shape=(2, 2)),
                      filters=[TransposeCodec(order=(1, 0))], compressors=None)
    assert ShardEncoder.from_metadata(store._store_dict["t/zarr.json"].to_bytes()) is None
    zarr.create_array(store, name="u", shape=(8, 8), dtype="uint8", chunks=(4, 4))
    assert ShardEncoder.from_metadata(store._store_dict["u/zarr.json"].to_bytes()) is None


def test_a_chunk_given_twice_or_missing_is_an_error():
    encoder = ShardEncoder.from_metadata(_meta())
    block = np.ones((16, 32), dtype="uint16")
    encoded = encoder.encode_box(((0, 16), (0, 32)), block)
    assert [c for c, _ in encoded] == [(0, 0), (0, 1)]
    builder = encoder.shard((0, 0))
    assert builder.expected == 4
    builder.put((0, 0), encoded[0][1])
    with pytest.raises(ValueError, match="given twice"):
        builder.put((0, 0), encoded[0][1])
    with pytest.raises(ValueError, match="missing"):
        builder.finish()
    with pytest.raises(ValueError, match="shape"):
        encoder.encode_box(((16, 32), (0, 32)), block[:8])
    with pytest.raises(ValueError, match="whole inner chunks"):
        encoder.encode_box(((8, 24), (0, 32)), block)


class _Sink:
    def __init__(self):
        self.data = bytearray()

    def append(self, b):
        at = len(self.data)
        self.data += b
        return at


def test_a_streamed_shard_reads_back_in_zarr():
    """Chunks appended as they come (in any order), the index last: zarr reads the shard."""
    store, arr = _zarr_array((64, 64), (32, 32), (16, 16), "uint16", [ZstdCodec(level=3)])
    encoder = ShardEncoder.from_metadata(store._store_dict["a/zarr.json"].to_bytes())
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    data[32:, 32:] = 0  # one shard of fill value only: no sink opened, no entry
    for index in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        builder, sinks = encoder.shard(index), []
        builder.put((1, 1), encoder.encode_chunk(data[index[0] * 32 + 16:index[0] * 32 + 32,
                                                      index[1] * 32 + 16:index[1] * 32 + 32]))
        # (bound now: the builder calls it before this iteration ends, B023 cannot tell)
        builder.stream_to(lambda sinks=sinks: sinks.append(_Sink()) or sinks[-1])
        (a, b), (c, d) = builder.region
        for chunk, enc in encoder.encode_box(((a, b), (c, d)), data[a:b, c:d])[::-1]:
            if chunk != (index[0] * 2 + 1, index[1] * 2 + 1):
                builder.put(encoder.shard_of(chunk)[1], enc)
        sink = builder.finish()
        if index == (1, 1):
            assert sink is None and sinks == []
            continue
        assert sink is sinks[0] and len(sinks) == 1
        store._store_dict["a/" + encoder.key(index)] = type(
            store._store_dict["a/zarr.json"]).from_bytes(bytes(sink.data))
    np.testing.assert_array_equal(zarr.open_array(store, path="a")[...], data)
